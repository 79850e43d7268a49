"""Kernel backends: the same dense forward/backward functions, two implementations.

- ``reference``: pure Python + NumPy, the lecture's equations written to be read.
- ``cython``: the compiled core (typed loops and BLAS, releasing the GIL).
"""

KERNELS = (
    "affine_forward",
    "sigmoid_forward",
    "sigmoid_backward",
    "outer_grad",
    "transpose_matvec",
    "bias_grad",
)
