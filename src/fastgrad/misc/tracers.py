"""``const_graph``: trace a function once, then replay the recorded primitives.

The first call runs ``fun`` traced (``fastgrad.tracer``) and keeps the primitives that
lead from the arguments to the result, in the order they ran, with everything else they
were given (constants, Python values). Later calls run only those primitives on the new
arguments: Python code around them — loops, branches, side effects — does not run again,
so the graph must not depend on the arguments' values (autograd's contract). Replayed on
traced values (inside ``grad``) the primitives record, so the result is differentiable.
A primitive whose result cannot be recomputed (one of NumPy's functions without a
derivative, which fastgrad records as the value it computed) is refused by name.
"""

import functools

from .._functional import _leaves
from .._tape import TensorBase
from ..extend import getval
from ..tracer import traced_call

__all__ = ["const_graph", "const_graph_unary"]


def const_graph_unary(fun):
    graph = []
    _fun = [fun]  # dropped after the first call: it may hold large bound arguments

    def maybe_cached_fun(x):
        if graph:
            return _replay(graph[0], x)
        recorded = []
        start, end = traced_call(_fun.pop(), x, lambda node, ans: recorded.append(node))
        if not (isinstance(end, TensorBase) and end._node is not None):
            raise ValueError("Output is independent of input")
        starts = [leaf._node for leaf in _leaves(start)]
        graph.append((starts, _needed(recorded, end._node, starts), end._node))
        nested = any(isinstance(v, TensorBase) and v._node is not None for v in _leaves(x))
        return end if nested else getval(end)

    return maybe_cached_fun


def _needed(recorded, end, starts):
    """The recorded nodes on a path from the starts to ``end``, in recording order."""
    wanted = {end}
    for node in reversed(recorded):
        if node in wanted:
            for _, parent in node.parents:
                wanted.add(parent)
    steps = [node for node in recorded if node in wanted]
    for node in steps:
        if node.freed:
            raise RuntimeError(
                f"const_graph: the graph of '{node.prim.name}' was freed by a backward pass "
                "inside the function; it cannot be replayed")
        if getattr(node.prim, "replayable", True) is False:
            raise NotImplementedError(
                f"const_graph: '{node.prim.name}' cannot be replayed (fastgrad records "
                "it as the value it computed, without a derivative)")
    return steps


def _replay(graph, x):
    starts, steps, end = graph
    values = dict(zip(starts, _leaves(x)))
    for node in steps:
        args = list(node.args)
        for argnum, parent in node.parents:
            if parent in values:
                args[argnum] = values[parent]
        for i, a in enumerate(args):
            if isinstance(a, TensorBase) and a._node is None:
                args[i] = a._data  # a constant that happened to be a tensor
        values[node] = node.prim(*args, **(node.kwargs or {}))
    return values[end]


def const_graph(fun, *args, **kwargs):
    """``fun`` with ``args``/``kwargs`` bound, traced on its first call and replayed after."""
    partial_fun = functools.partial(fun, *args, **kwargs)
    cached = const_graph_unary(lambda args: partial_fun(*args))

    @functools.wraps(fun)
    def _fun(*args):
        return cached(args)

    return _fun
