"""autograd's ``util`` names."""

from .misc.flatten import flatten  # noqa: F401
from .test_util import check_grads


def quick_grad_check(
    fun, arg0, extra_args=(), kwargs=None, verbose=True, eps=1e-4, rtol=1e-4, atol=1e-6, rs=None
):
    """Deprecated in autograd: a first-order reverse-mode check of ``fun`` at ``arg0``."""
    kwargs = kwargs or {}
    check_grads(lambda x: fun(x, *extra_args, **kwargs), modes=["rev"], order=1)(arg0)
