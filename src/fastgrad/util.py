"""autograd's ``util`` names: ``func``, ``subval``/``subvals``, ``toposort``, and the
deprecated ``quick_grad_check``."""

import operator
import warnings

__all__ = ["func", "subval", "subvals", "toposort", "quick_grad_check"]


def func(f):
    """The function itself (autograd uses it to name a method: ``func(Class.method)``)."""
    return f


def subvals(x, ivs):
    """``x`` as a tuple with the (index, value) pairs ``ivs`` substituted."""
    x_ = list(x)
    for i, v in ivs:
        x_[i] = v
    return tuple(x_)


def subval(x, i, v):
    x_ = list(x)
    x_[i] = v
    return tuple(x_)


def toposort(end_node, parents=operator.attrgetter("parents")):
    """The nodes leading to ``end_node``, each after all of its children (end first)."""
    child_counts = {}
    stack = [end_node]
    while stack:
        node = stack.pop()
        if node in child_counts:
            child_counts[node] += 1
        else:
            child_counts[node] = 1
            stack.extend(parents(node))
    childless = [end_node]
    while childless:
        node = childless.pop()
        yield node
        for parent in parents(node):
            if child_counts[parent] == 1:
                childless.append(parent)
            else:
                child_counts[parent] -= 1


def quick_grad_check(
    fun, arg0, extra_args=(), kwargs=None, verbose=True, eps=1e-4, rtol=1e-4, atol=1e-6, rs=None
):
    """Deprecated in autograd: a first-order reverse-mode check of ``fun`` at ``arg0``."""
    from .test_util import check_grads

    warnings.warn("quick_grad_check is deprecated (as in autograd): use fastgrad.test_util.check_grads")
    kwargs = kwargs or {}
    check_grads(lambda x: fun(x, *extra_args, **kwargs), modes=["rev"], order=1)(arg0)
