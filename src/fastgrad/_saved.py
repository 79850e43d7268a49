"""The saved-data guard: data a live graph saved for its backward pass cannot change unseen.

A node's derivative rules read its inputs (x in x̄ = ȳ ∘ f'(x)). Writing into those
arrays between the forward and the backward would silently give a wrong gradient, so:

- a tensor a live node saved counts that node (``tensor._saves``), and its ``.data`` is
  handed out read-only while the count is non-zero (``Tensor.data``);
- a plain NumPy array passed as a constant is made read-only outright (``Saved``), and
  writable again when the last node holding it is released;
- a write that must happen anyway (an optimizer step, an in-place operator under
  ``no_grad``) goes through ``inplace_update``, which stamps the tensor with the clock's
  current time; a node recorded before that time then refuses to run backward.

One clock numbers both the nodes (``_tape``) and the writes (here), so "recorded before
the write" is a comparison of two numbers. This module knows nothing of the tape:
tensors are recognised by their fields (``_data``, ``_saves``, ``_written_at``).
"""

import itertools

import numpy as np

__all__ = ["Saved", "inplace_update", "frozen_by_graph", "clock", "marked_writes"]

# The recording clock: node numbers (topological order) and in-place write stamps.
clock = itertools.count()
# In-place writes into saved tensors so far; the backward checks writes only once one happened.
marked_writes = [0]


class _Frozen:
    """A NumPy array made read-only because live graphs saved it (``count`` of them)."""

    __slots__ = ("array", "count", "version")

    def __init__(self, array):
        self.array = array
        self.count = 0
        self.version = 0


frozen = {}  # id(array) -> _Frozen, for the plain arrays this module made read-only
# No lock: the count updates make no calls between read and write, so CPython does not
# switch threads inside them.


def _is_tensor(x):
    return hasattr(x, "_saves") and hasattr(x, "_data")


class Saved:
    """Plain NumPy arrays (constants, not tensors) that a rule reads, frozen until released."""

    __slots__ = ("entries", "versions")

    def __init__(self, arrays):
        entries = []
        for a in arrays:
            # Freeze the array and every array it is a view of, so a write through the
            # base is caught as well.
            while type(a) is np.ndarray:
                entry = frozen.get(id(a))
                if entry is None:
                    if not a.flags.writeable:
                        break  # read-only already, and not by us: nobody can write it
                    a.setflags(write=False)
                    entry = frozen[id(a)] = _Frozen(a)
                entry.count += 1
                entries.append(entry)
                a = a.base
        self.entries = entries
        self.versions = [e.version for e in entries]

    def check(self, name):
        """Raise if an array saved for primitive ``name`` was written since it was saved."""
        for entry, version in zip(self.entries, self.versions):
            if entry.version != version:
                raise RuntimeError(
                    f"an array of shape {entry.array.shape} saved by '{name}' for the "
                    "backward pass was modified in place after the graph was recorded; "
                    "recompute the forward pass before calling backward()"
                )

    def release(self):
        entries, self.entries = self.entries, ()
        for entry in reversed(entries):  # bases last frozen, first thawed
            entry.count -= 1
            if entry.count == 0:
                del frozen[id(entry.array)]
                try:
                    entry.array.setflags(write=True)
                except ValueError:  # a view whose base another graph still protects
                    pass


class inplace_update:  # noqa: N801  (used like a function: ``with inplace_update(W):``)
    """Write into a tensor's data in place even while graphs saved it (optimizer steps).

    The write marks the tensor, so a graph recorded before it refuses to run backward
    instead of using the new values::

        with inplace_update(W):
            W.data -= lr * W.grad      # .data is writable inside
    """

    __slots__ = ("tensor", "entries", "_saves")

    def __init__(self, tensor):
        self.tensor = tensor
        entries = []
        a = tensor._data if _is_tensor(tensor) else tensor
        while type(a) is np.ndarray:
            entry = frozen.get(id(a))
            if entry is not None:
                entries.append(entry)
            a = a.base
        self.entries = entries

    def __enter__(self):
        t = self.tensor
        if _is_tensor(t):
            if t._saves:
                t._written_at = next(clock)
                marked_writes[0] += 1
            self._saves, t._saves = t._saves, 0  # .data is writable inside the block
        for entry in reversed(self.entries):
            entry.array.setflags(write=True)
        return self

    def __exit__(self, *exc):
        t = self.tensor
        if _is_tensor(t):
            t._saves += self._saves
        for entry in self.entries:
            entry.version += 1
            entry.array.setflags(write=False)
        return False


def frozen_by_graph(tensor) -> bool:
    """True if a live graph saved this tensor (or this array), so it must not be written."""
    if _is_tensor(tensor):
        if tensor._saves:
            return True
        tensor = tensor._data
    while type(tensor) is np.ndarray:
        if id(tensor) in frozen:
            return True
        tensor = tensor.base
    return False
