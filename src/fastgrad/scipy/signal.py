"""``fastgrad.scipy.signal``: autograd's generalized ``convolve``, differentiable in both
arrays.

``convolve(A, B, axes=None, dot_axes=[(), ()], mode='full')`` convolves A and B along the
paired ``axes`` (``axes[0][k]`` of A with ``axes[1][k]`` of B; default: all of A's axes with
the same of B's), sums over the paired ``dot_axes`` (a tensordot), and keeps every other
axis: the result's axes are A's other axes, then B's other axes, then the convolved ones
in the order of the pairs. ``mode`` is SciPy's: 'full' (nA + nB − 1), 'valid'
(|nA − nB| + 1; one array must be at least as large as the other along every convolved
axis) or 'same' (nA, centred as ``scipy.signal.convolve``).

The forward slides a window view of one (zero-padded) array over the other, flipped,
and contracts with ``tensordot`` (a matrix product). The adjoints are convolutions of
the output's error signal with the other array, flipped (correlations):

    full:   Ā = valid(C̄, flip B),       B̄ = valid(C̄, flip A)
    valid:  Ā = full or valid(C̄, flip B) (whichever gives A's size), B̄ likewise
    same:   C̄ zero-padded to the full size first, then valid.
"""

import numpy as onp
from numpy.lib.stride_tricks import as_strided

from .. import numpy as fnp
from ._common import Formula, Sample, entry, shape_of

__all__ = ["convolve"]

_MODES = ("full", "valid", "same")


class _Axes:
    """The axes of one call: conv pairs, dot pairs, and each array's other axes."""

    __slots__ = ("conv", "dot", "other")

    def __init__(self, a_shape, b_shape, axes, dot_axes):
        na, nb = len(a_shape), len(b_shape)
        if axes is None:
            axes = (range(na), range(na))
        if dot_axes is None:
            dot_axes = ((), ())
        try:
            conv = [tuple(_axis(i, n) for i in ax) for ax, n in zip(axes, (na, nb))]
            dot = [tuple(_axis(i, n) for i in ax) for ax, n in zip(dot_axes, (na, nb))]
        except (TypeError, IndexError, ValueError):
            raise ValueError(f"convolve: axes={axes!r}, dot_axes={dot_axes!r} do not name axes of "
                             f"arrays of shapes {tuple(a_shape)} and {tuple(b_shape)}") from None
        for k in (0, 1):
            if len(conv[0]) != len(conv[1]) or len(dot[0]) != len(dot[1]) or \
                    len(set(conv[k] + dot[k])) != len(conv[k] + dot[k]):
                raise ValueError(f"convolve: axes={axes!r}, dot_axes={dot_axes!r} must pair "
                                 f"distinct axes of shapes {tuple(a_shape)} and {tuple(b_shape)}")
        for i, j in zip(*dot):
            if a_shape[i] != b_shape[j]:
                raise ValueError(f"convolve: dot axes {i} of A {tuple(a_shape)} and {j} of B "
                                 f"{tuple(b_shape)} differ in length")
        self.conv, self.dot = conv, dot
        self.other = [tuple(i for i in range(n) if i not in conv[k] + dot[k])
                      for k, n in enumerate((na, nb))]


def _axis(i, n):
    i = int(i)
    if not -n <= i < n:
        raise IndexError(i)
    return i % n


def _flip(x, axes):
    index = [slice(None)] * len(shape_of(x))
    for i in axes:
        index[i] = slice(None, None, -1)
    return x[tuple(index)]


def _convolve(A, B, axes=None, dot_axes=None, mode="full"):
    A, B = onp.asarray(A), onp.asarray(B)
    if mode not in _MODES:
        raise ValueError(f"convolve: mode {mode!r} is not one of {_MODES}")
    ax = _Axes(A.shape, B.shape, axes, dot_axes)
    na = [A.shape[i] for i in ax.conv[0]]
    nb = [B.shape[i] for i in ax.conv[1]]
    # X slides (zero-padded), Y is the window, flipped: X = A unless B must be the larger
    if mode == "same":
        x_is_a = True
        pads = [(n - 1 - (n - 1) // 2, (n - 1) // 2) for n in nb]
    elif mode == "full":
        x_is_a = onp.prod(na) >= onp.prod(nb)
        pads = [(n - 1, n - 1) for n in (nb if x_is_a else na)]
    else:
        if all(p >= q for p, q in zip(na, nb)):
            x_is_a = True
        elif all(q >= p for p, q in zip(na, nb)):
            x_is_a = False
        else:
            raise ValueError(f"convolve: in mode 'valid' one array must be at least as large as the "
                             f"other along every convolved axis (A {A.shape}, B {B.shape}, "
                             f"axes {ax.conv[0]} and {ax.conv[1]})")
        pads = [(0, 0)] * len(na)
    x, y, kx, ky = (A, B, 0, 1) if x_is_a else (B, A, 1, 0)
    if ax.conv[0] and _window_copy(x, y, ax, kx, ky, pads) > _DIRECT_MAX and A.dtype.kind == B.dtype.kind == "f":
        return _by_fft(A, B, ax, mode)
    return _slide(x, y, ax, kx, ky, pads)


# The direct method copies every window (a matrix for one product); past this many
# elements the copy costs more than transforms: the FFT method (as scipy.signal.convolve
# chooses it for large arrays). Both agree to rounding.
_DIRECT_MAX = 1 << 23


def _window_copy(x, y, ax, kx, ky, pads):
    """How many elements the direct method's window matrix holds."""
    n = 1
    for i in ax.other[kx] + ax.dot[kx]:
        n *= x.shape[i]
    for i, j, p in zip(ax.conv[kx], ax.conv[ky], pads):
        n *= (x.shape[i] + p[0] + p[1] - y.shape[j] + 1) * y.shape[j]
    return n


def _by_fft(A, B, ax, mode):
    """The convolution by real FFTs over the convolved axes, the dot axes contracted in
    the frequency domain (one matrix product per frequency), then cut to ``mode``."""
    k = len(ax.conv[0])
    a = onp.transpose(A, ax.other[0] + ax.dot[0] + ax.conv[0])
    b = onp.transpose(B, ax.other[1] + ax.dot[1] + ax.conv[1])
    na = [A.shape[i] for i in ax.conv[0]]
    nb = [B.shape[i] for i in ax.conv[1]]
    full = [p + q - 1 for p, q in zip(na, nb)]
    oa, ob = a.shape[:len(ax.other[0])], b.shape[:len(ax.other[1])]
    d = int(onp.prod([A.shape[i] for i in ax.dot[0]]))
    fa = onp.fft.rfftn(a, s=full, axes=range(a.ndim - k, a.ndim))
    fb = onp.fft.rfftn(b, s=full, axes=range(b.ndim - k, b.ndim))
    freq = fa.shape[a.ndim - k:]
    fa = fa.reshape(int(onp.prod(oa)), d, -1).transpose(2, 0, 1)  # (F, Pa, D)
    fb = fb.reshape(int(onp.prod(ob)), d, -1).transpose(2, 1, 0)  # (F, D, Pb)
    prod = onp.matmul(fa, fb).transpose(1, 2, 0)  # (Pa, Pb, F)
    out = onp.fft.irfftn(prod.reshape(prod.shape[:2] + freq), s=full, axes=range(2, 2 + k))
    cut = [slice(None), slice(None)]
    for p, q in zip(na, nb):
        if mode == "full":
            cut.append(slice(None))
        elif mode == "valid":
            cut.append(slice(min(p, q) - 1, max(p, q)))
        else:
            cut.append(slice((q - 1) // 2, (q - 1) // 2 + p))
    out = out[tuple(cut)]
    return out.reshape(oa + ob + out.shape[2:]).astype(onp.result_type(A, B), copy=False)


def _slide(x, y, ax, kx, ky, pads):
    """Σ over windows and dot axes of x (padded) ⋆ flip(y), with the axes in the order
    [A's other, B's other, conv pairs]."""
    conv_x, conv_y = ax.conv[kx], ax.conv[ky]
    if any(p != (0, 0) for p in pads):
        width = [(0, 0)] * x.ndim
        for i, p in zip(conv_x, pads):
            width[i] = p
        x = onp.pad(x, width)
    y = _flip(y, conv_y)
    shape, strides = list(x.shape), list(x.strides)
    for i, j in zip(conv_x, conv_y):
        shape[i] = x.shape[i] - y.shape[j] + 1
        shape.append(y.shape[j])
        strides.append(x.strides[i])
    windows = as_strided(x, shape, strides, writeable=False)
    window_axes = list(range(x.ndim, x.ndim + len(conv_x)))
    out = onp.tensordot(windows, y, (window_axes + list(ax.dot[kx]), list(conv_y) + list(ax.dot[ky])))
    # tensordot's result: x's axes that are not dot axes (in x's order), then y's others
    labels = [("conv", conv_x.index(i)) if i in conv_x else (kx, i)
              for i in range(x.ndim) if i not in ax.dot[kx]] + [(ky, j) for j in ax.other[ky]]
    want = [(0, i) for i in ax.other[0]] + [(1, j) for j in ax.other[1]] + \
        [("conv", k) for k in range(len(conv_x))]
    order = [labels.index(w) for w in want]
    return out if order == sorted(order) else onp.transpose(out, order)


def _convolve_rule(argnum):
    """The adjoint for A (argnum 0) or B (1): a convolution of C̄ with the other, flipped."""

    def rule(g, ans, A, B, axes=None, dot_axes=None, mode="full"):
        a_shape, b_shape = shape_of(A), shape_of(B)
        ax = _Axes(a_shape, b_shape, axes, dot_axes)
        k, other = argnum, 1 - argnum
        y = (A, B)[other]
        n_other = [len(ax.other[0]), len(ax.other[1])]
        n_conv = len(ax.conv[0])
        # the positions of C̄'s axes: A's other, B's other, conv
        g_other = [list(range(n_other[0])), list(range(n_other[0], n_other[0] + n_other[1]))]
        g_conv = list(range(n_other[0] + n_other[1], n_other[0] + n_other[1] + n_conv))
        nx = [(a_shape, b_shape)[k][i] for i in ax.conv[k]]
        ny = [(a_shape, b_shape)[other][i] for i in ax.conv[other]]
        if mode == "same":  # C̄ back in the full output, at offset (nB − 1)//2
            nb = [b_shape[i] for i in ax.conv[1]]
            width = [(0, 0)] * len(shape_of(g))
            for i, n in zip(g_conv, nb):
                width[i] = ((n - 1) // 2, n - 1 - (n - 1) // 2)
            g, new_mode = fnp.pad(g, width, mode="constant"), "valid"
        elif mode == "full":
            new_mode = "valid"
        else:
            new_mode = "full" if any(p > q for p, q in zip(nx, ny)) else "valid"
        r = convolve(g, _flip(y, ax.conv[other]), axes=(g_conv, ax.conv[other]),
                     dot_axes=(g_other[other], ax.other[other]), mode=new_mode)
        # r's axes: this argument's other axes, its dot axes (in the order of the other's
        # dot axes, sorted), its conv axes (pair order)
        by_other = sorted(range(len(ax.dot[other])), key=lambda p: ax.dot[other][p])
        labels = list(ax.other[k]) + [ax.dot[k][p] for p in by_other] + list(ax.conv[k])
        order = list(onp.argsort(labels))
        return r if order == sorted(order) else fnp.transpose(r, order)

    return rule


def _macs(out, args):
    """An upper bound: every product of an element of A with one of B (exact for 'full'
    without dot axes); each adjoint the same."""
    if args[0] is None or args[1] is None:
        return 0, {0: 0, 1: 0}
    n = int(onp.prod(args[0])) * int(onp.prod(args[1]))
    return n, {0: n, 1: n}


def _samples(r):
    R = r.normal
    return [Sample(R(size=(5,)), R(size=(3,)), mode="full"),
            Sample(R(size=(5,)), R(size=(3,)), mode="valid"),
            Sample(R(size=(3,)), R(size=(5,)), mode="valid"),
            Sample(R(size=(5,)), R(size=(4,)), mode="same"),
            Sample(R(size=(3,)), R(size=(5,)), mode="same"),
            Sample(R(size=(4, 3)), R(size=(2, 2)), mode="full"),
            Sample(R(size=(4, 3)), R(size=(3, 2)), axes=([1], [0]), mode="valid"),
            Sample(R(size=(3, 3, 2)), R(size=(3, 2, 3)), axes=([1], [1]), dot_axes=([0], [2]), mode="same"),
            Sample(R(size=(2, 3, 5, 5)), R(size=(3, 4, 2, 2)), axes=([2, 3], [2, 3]),
                   dot_axes=([1], [0]), mode="valid")]


# C = A ∗ B (convolved along the paired axes, contracted along the dot axes)
convolve = entry(
    _convolve, "convolve", vjps=[_convolve_rule(0), _convolve_rule(1)],
    formula=Formula("{out} = {0} ∗ {1}", {0: "{0}̄ = {out}̄ ⋆ {1}  (correlation)",
                                          1: "{1}̄ = {out}̄ ⋆ {0}  (correlation)"}, _macs),
    samples=_samples,
)
convolve.__doc__ = __doc__.split("\n\n")[1]
