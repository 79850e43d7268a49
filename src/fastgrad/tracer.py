"""autograd's ``tracer``: follow a computation primitive by primitive with your own nodes.

    class PrintNode(Node):
        def __init__(self, value, fun, args, kwargs, parent_argnums, parents): ...
        def initialize_root(self, x): ...

    end_value, end_node = trace(PrintNode.new_root(x), f, x)

``trace`` runs ``f`` on a traced ``x`` and, for every primitive applied to a value that
depends on ``x`` (in the order they run, inside nested transforms too: ``trace(root,
grad(f), x)`` sees the forward and the recorded backward), makes one node of the root's
class with ``(value, fun, args, kwargs, parent_argnums, parents)``: ``fun`` the primitive
(``fun.__name__`` its NumPy name), ``args`` the argument values (traced ones as their
values), ``parents`` the nodes of the traced arguments at ``parent_argnums``.

fastgrad records on one tape; ``trace`` watches it through the tape's observer hook
(``_tape._anomaly``, which costs nothing while no one watches) in the calling thread.
"""

import threading
import warnings

import numpy as np

from . import _ops, _tape
from ._functional import _leaves, _map, _mode, _SetGrad, _Start
from ._tape import TensorBase, leaf_node, wrap
from .extend import Box, getval, isbox, notrace_primitive, primitive, register_notrace  # noqa: F401
from .util import toposort  # noqa: F401

__all__ = ["Node", "trace", "Box", "getval", "isbox", "primitive", "notrace_primitive",
           "register_notrace", "new_box", "toposort"]


class Node:
    """A vertex of a user's trace: subclass it with ``__init__(value, fun, args, kwargs,
    parent_argnums, parents)`` and ``initialize_root(*args)``; ``new_root`` makes a root."""

    __slots__ = []

    def __init__(self, value, fun, args, kwargs, parent_argnums, parents):
        raise NotImplementedError("subclass Node and define __init__")

    def initialize_root(self, *args, **kwargs):
        raise NotImplementedError("subclass Node and define initialize_root")

    @classmethod
    def new_root(cls, *args, **kwargs):
        root = cls.__new__(cls)
        root.initialize_root(*args, **kwargs)
        return root


class _Watch:
    """Sees every node the tape records in this thread while installed: ``on_node(node,
    ans)`` is called for each. Chained to the observer installed before it (anomaly mode)."""

    def __init__(self, on_node):
        self.on_node = on_node
        self.thread = threading.get_ident()
        self.previous = None
        self.last_ans = None

    def forward(self, prim, args, ans):
        if self.previous is not None:
            self.previous.forward(prim, args, ans)
        self.last_ans = ans

    def recorded(self, node):
        if self.previous is not None:
            self.previous.recorded(node)
        if threading.get_ident() == self.thread:
            self.on_node(node, self.last_ans)

    def backward(self, node, argnum, signal):
        if self.previous is not None:
            self.previous.backward(node, argnum, signal)

    def __enter__(self):
        self.previous = _tape._anomaly
        _tape._anomaly = self
        return self

    def __exit__(self, *exc):
        if _tape._anomaly is self:
            _tape._anomaly = self.previous
        return False


def traced_call(fun, x, on_node):
    """Run ``fun`` on ``x`` traced from fresh leaves (as a transform does), calling
    ``on_node(node, value)`` for every node recorded meanwhile in this thread; returns
    (the traced input, fun's result)."""
    start = _map(lambda s: s.tensor, _map(_Start, x))
    with _Watch(on_node), _SetGrad(True):
        _mode.depth += 1  # as a transform: nested ones record their backward
        try:
            end = fun(start)
        finally:
            _mode.depth -= 1
    return start, end


def trace(start_node, fun, x):
    """autograd's ``trace``: ``(end_value, end_node)``, or ``(end, None)`` with a warning
    when the output does not depend on ``x``."""
    made = {}
    node_type = type(start_node)

    def on_node(node, ans):
        parents = [(argnum, made[p]) for argnum, p in node.parents if p in made]
        if not parents:
            return  # not a function of this trace's input
        if node.prim is _ops.identity and len(parents) == 1:
            # a nested transform's fresh variable on top of a traced value (autograd makes
            # a new box there, not a primitive): the same user node
            made[node] = parents[0][1]
            return
        args = tuple(getval(a) for a in node.args)
        argnums, user_parents = zip(*parents)
        made[node] = node_type(ans, node.prim, args, dict(node.kwargs or {}), argnums, user_parents)

    def fun_with_roots(start):
        for leaf in _leaves(start):
            if isinstance(leaf, TensorBase) and leaf._node is not None:
                made[leaf._node] = start_node
        return fun(start)

    start, end = traced_call(fun_with_roots, x, on_node)
    if isinstance(end, TensorBase) and end._node in made:
        return getval(end), made[end._node]
    warnings.warn("Output seems independent of input.")
    return end, None


def new_box(value, trace, node):
    """A traced value of ``value``'s registered Box class (a fresh leaf; ``trace`` and
    ``node`` are autograd's and have no counterpart on fastgrad's one tape)."""
    box = _tape.box_type_mappings.get(type(value))
    if box is None:
        raise TypeError(f"Can't differentiate w.r.t. type {type(value)}")
    return wrap(box, value, leaf_node(np.shape(value) if isinstance(value, np.ndarray) else ()))
