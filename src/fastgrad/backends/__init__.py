"""Kernel backends: the same dense forward/backward functions, two implementations.

- ``reference``: pure Python + NumPy, the lecture's equations written to be read.
- ``cython``: the compiled core (typed loops and BLAS, releasing the GIL).
"""

# Every kernel, in both backends under these names and signatures: the six of SPEC §2
# first, then the fused and update kernels. Each backend's __all__ is this list.
KERNELS = (
    "affine_forward",
    "sigmoid_forward",
    "sigmoid_backward",
    "softplus_forward",
    "outer_grad",
    "transpose_matvec",
    "bias_grad",
    "affine_sigmoid_forward",
    "softmax_cross_entropy_forward",
    "softmax_cross_entropy_backward",
    "squared_error_forward",
    "squared_error_backward",
    "sgd_update",
    "sgd_update_many",
    "sgd_outer_update",
    "adam_update",
)
