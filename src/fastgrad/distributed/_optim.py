"""``DistributedOptimizer``: every gradient in one flat buffer, one Allreduce, then the step.

A step is three parts, each callable on its own (a compiled plan replaces the first):

1. ``pack(n_local, n_total, loss)``: each parameter's gradient, scaled by nᵣ/B, written
   into its view of ``buffer``; after the gradients come one slot per parameter (1 if
   this rank has a gradient for it), then nᵣ/B · loss, then nᵣ;
2. ``comm.allreduce(buffer)``: the one collective of the step;
3. ``unpack_and_step(n_total)``: each parameter's ``.grad`` becomes its view of the summed
   buffer (no copy; None where no rank had a gradient, so the optimizer skips it as it
   would in one process), the wrapped optimizer steps, and the global batch loss is
   returned.
"""

from __future__ import annotations

import numpy as np

from .. import _tape
from .._backend import kernels
from .._factored import OuterGrad
from .._tensor import Tensor
from ._comm import DistributedError

__all__ = ["DistributedOptimizer", "flatten_parameters"]

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
_LOSS, _COUNT = -2, -1  # the last two slots of the buffer
_OWN = ("optimizer", "comm", "params", "buffer", "views", "dtype", "flags", "_scratch")


def flatten_parameters(params, owner="flatten_parameters", extra=0):
    """A zeroed flat buffer with room for every parameter (plus ``extra`` slots), and one
    C-contiguous view of it per parameter, shaped like the parameter."""
    dtypes = {np.dtype(p.data.dtype) for p in params}
    if len(dtypes) != 1 or next(iter(dtypes)) not in _FLOATS:
        raise TypeError(
            f"{owner}: all parameters must share one float dtype (float32 or float64) to travel "
            f"in one buffer, got {sorted(str(d) for d in dtypes)}"
        )
    dtype = dtypes.pop()
    sizes = [int(np.prod(p.data.shape, dtype=np.int64)) for p in params]
    buffer = np.zeros(sum(sizes) + extra, dtype=dtype)
    views, offset = [], 0
    for p, n in zip(params, sizes):
        views.append(buffer[offset : offset + n].reshape(p.data.shape))
        offset += n
    return buffer, views


class DistributedOptimizer:
    """Wraps an optimizer (``SGD``, ``Adam``, …) so its step uses the gradient of the
    global batch: all ranks' gradients, weighted by their number of examples, summed in
    one Allreduce of one flat buffer.

    ``step(n_local, n_total, loss=None)``: ``n_local`` rows of this rank's slice went into
    its loss (0 for an empty slice: then do not call backward, its gradient counts as
    zero), ``n_total`` rows make the global batch (the same on every rank). The loss must
    be the mean over the slice's rows, as fastgrad's losses are. Returns the global
    batch's mean loss when ``loss`` is given (it travels in the same Allreduce), else None.
    With size 1 the step is exactly the wrapped optimizer's.

    After a step every parameter's ``.grad`` is the global gradient, a view of ``buffer``
    that the next step overwrites (copy it to keep it).
    """

    def __init__(self, optimizer, comm=None):
        if not hasattr(optimizer, "step") or not hasattr(optimizer, "params"):
            raise TypeError(
                f"DistributedOptimizer: expected an optimizer with .params and .step(), got {type(optimizer).__name__}"
            )
        if isinstance(optimizer, DistributedOptimizer):
            raise TypeError("DistributedOptimizer: the optimizer is already distributed")
        if comm is None:
            from . import communicator

            comm = communicator()
        self.optimizer = optimizer
        self.comm = comm
        self.params = list(optimizer.params)
        n_params = len(self.params)
        self.buffer, self.views = flatten_parameters(self.params, "DistributedOptimizer", extra=n_params + 2)
        self.dtype = self.buffer.dtype
        self.flags = self.buffer[-2 - n_params : -2]  # which parameters got a gradient
        self._scratch = {}

    # -- the wrapped optimizer's face --

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.optimizer.zero_grad(set_to_none)

    def state_dict(self) -> dict:
        return self.optimizer.state_dict()

    def load_state_dict(self, state_dict: dict) -> None:
        self.optimizer.load_state_dict(state_dict)

    def __getattr__(self, name):  # lr, momentum, state, … of the wrapped optimizer
        if name == "optimizer":
            raise AttributeError(name)
        return getattr(self.optimizer, name)

    def __setattr__(self, name, value):
        if name in _OWN:
            object.__setattr__(self, name, value)
        else:  # opt.lr = 0.01 reaches the wrapped optimizer
            setattr(self.optimizer, name, value)

    # -- the step --

    def step(self, n_local: int, n_total: int, loss=None):
        """Sum the ranks' gradients (weighted nᵣ/B) in one Allreduce, then step; see the class."""
        if _tape._tracer is not None:
            from .._compiler.ir import TracingError

            # The Allreduce is not an instruction of a compiled plan yet: a replay would skip it.
            raise TracingError(
                "DistributedOptimizer.step inside fastgrad.compile is not supported yet: compile "
                "the forward and backward only, and call step() outside the compiled function"
            )
        weight = self._weight(n_local, n_total)
        if self.comm.size == 1:  # nothing to sum: exactly the plain step
            self.optimizer.step()
            return None if loss is None else _loss_value(loss)
        self.pack(n_local, n_total, loss, weight=weight)
        self.comm.allreduce(self.buffer)
        return self.unpack_and_step(n_total)

    def _weight(self, n_local, n_total):
        for name, value in (("n_local", n_local), ("n_total", n_total)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise ValueError(f"DistributedOptimizer.step: {name} must be an integer >= 0, got {value!r}")
        if n_total == 0 or n_local > n_total:
            raise ValueError(
                f"DistributedOptimizer.step: need 0 <= n_local <= n_total and n_total > 0, "
                f"got n_local={n_local}, n_total={n_total}"
            )
        if self.comm.size == 1 and n_local != n_total:
            raise ValueError(
                f"DistributedOptimizer.step: in a job of size 1 this rank holds the whole batch, "
                f"but n_local={n_local} != n_total={n_total}"
            )
        return n_local / n_total

    def pack(self, n_local, n_total, loss=None, weight=None):
        """Part 1: the weighted gradients, then the trailer (flags, loss, count), into ``buffer``."""
        if weight is None:
            weight = self._weight(n_local, n_total)
        scale = self.dtype.type(weight)
        for i, (p, view) in enumerate(zip(self.params, self.views)):
            g = _tape.stored_grad(p) if type(p) is Tensor else p.grad
            self.flags[i] = g is not None and n_local > 0
            if g is None or n_local == 0:
                view.fill(0)  # no backward reached it (or an empty slice): it adds nothing
            elif type(g) is OuterGrad:
                # W̄ = z̄ᵀ x straight into the buffer; the weight goes on the small factor z̄.
                dz = g.dz if weight == 1.0 else self._scaled(i, g.dz, scale)
                kernels().outer_grad(
                    np.ascontiguousarray(dz, self.dtype), np.ascontiguousarray(g.x, self.dtype), out=view
                )
            else:
                g = np.asarray(p.grad if type(p) is Tensor else g)
                if g.shape != view.shape:
                    raise ValueError(
                        f"DistributedOptimizer.step: parameter {i} has shape {view.shape} but its "
                        f"gradient has shape {g.shape}"
                    )
                np.multiply(g, scale, out=view, casting="same_kind")
        self.pack_trailer(n_local, weight, loss)

    def _scaled(self, i, dz, scale):
        """scale · z̄ in a buffer kept per parameter (a fresh one each step would page-fault)."""
        out = self._scratch.get(i)
        if out is None or out.shape != dz.shape:
            out = self._scratch[i] = np.empty(dz.shape, self.dtype)
        np.multiply(dz, scale, out=out, casting="same_kind")
        return out

    def pack_trailer(self, n_local, weight, loss=None):
        """The last two slots: nᵣ/B · loss and nᵣ (a compiled plan that wrote the weighted
        gradients and the flags itself calls only this)."""
        self.buffer[_LOSS] = 0.0 if loss is None or n_local == 0 else weight * _loss_value(loss)
        self.buffer[_COUNT] = n_local

    def check_counts(self, n_total):
        """After the Allreduce: the ranks' rows must add up to the global batch."""
        counted = float(self.buffer[_COUNT])
        if counted != n_total:
            raise DistributedError(
                f"DistributedOptimizer.step: the {self.comm.size} ranks' slices hold {counted:g} rows "
                f"together, but n_total is {n_total}: the ranks disagree about the batch (each must "
                "take its slice of the same global batch, e.g. with DistributedLoader and one seed)"
            )

    def unpack_and_step(self, n_total):
        """Part 3: check the counts, point each ``.grad`` at its view of the summed buffer
        (None where no rank had a gradient), step; returns the global batch's mean loss."""
        self.check_counts(n_total)
        for p, view, flag in zip(self.params, self.views, self.flags):
            p.grad = view if flag else None
        self.optimizer.step()
        return float(self.buffer[_LOSS])

    def __repr__(self):
        return (
            f"DistributedOptimizer({self.optimizer!r}, {self.comm!r}, {self.buffer.size - self.flags.size - 2} values)"
        )


def _loss_value(loss) -> float:
    value = loss.item() if hasattr(loss, "item") else loss
    return float(value)
