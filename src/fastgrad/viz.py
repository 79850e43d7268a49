"""Seeing backprop: the recorded graph as Graphviz DOT, and the backward pass explained.

    loss = fg.nn.functional.squared_error(model(x), t)
    print(fg.explain(loss, names=dict(model.named_parameters())))
    dot = fg.viz.to_dot(loss)          # paste into any Graphviz viewer

``explain`` prints the lecture's backward pass for this very graph: one line per node in
reverse topological order, the rule it applies (``z̄ = h̄ ∘ σ'(z)``, ``W̄ = z̄ᵀ x``…), the
shapes, and the multiply-adds each step costs forward and backward — so "the backward
pass costs about two forward passes" can be read off any model.
"""

import math

import numpy as np

from ._factored import leaf_grad
from ._tensor import Tensor

__all__ = ["to_dot", "render", "explain", "graph_nodes"]


def _shape(x):
    if isinstance(x, Tensor):
        return tuple(x.shape)
    if isinstance(x, type):  # a dtype argument (astype's np.float64): its .shape is a descriptor
        return ()
    return tuple(np.shape(x))


def graph_nodes(tensor):
    """The nodes that computed ``tensor``, parents before children, with output shapes.

    Returns a list of (node, shape) in topological (recording) order. Works after a
    backward too: a swept node keeps its place in the graph and its shape.
    """
    root = tensor._node
    if root is None:
        return []
    seen = {root}
    stack = [root]
    while stack:
        node = stack.pop()
        for _, parent in node.parents or ():
            if parent not in seen:
                seen.add(parent)
                stack.append(parent)
    return [(node, tuple(node.shape) if node.shape is not None else None)
            for node in sorted(seen, key=lambda n: n.seq)]


def _fmt_shape(shape):
    if shape is None:
        return "?"
    return "×".join(str(n) for n in shape) if shape else "scalar"


def _names(nodes, names):
    """v1, v2, … by topological order; leaves named by the caller where given."""
    by_node = {}
    if names:
        for name, t in names.items():
            if isinstance(t, Tensor) and t._node is not None:
                by_node[t._node] = name
    labels = {}
    for k, (node, _) in enumerate(nodes, 1):
        labels[node] = by_node.get(node, f"v{k}")
    if names:  # constants (tensors without a node) are found by identity
        for name, t in names.items():
            if isinstance(t, Tensor) and t._node is None:
                labels[id(t)] = name
    return labels


def to_dot(tensor, names=None) -> str:
    """The graph that computed ``tensor`` in Graphviz DOT.

    Nodes show the operation and output shape; leaves that have a ``.grad`` show the
    error signal's norm ‖v̄‖. ``names`` maps names to tensors (``dict(model.named_parameters())``).
    """
    nodes = graph_nodes(tensor)
    labels = _names(nodes, names)
    lines = ["digraph fastgrad {", "  rankdir=BT;", '  node [fontname="Helvetica", fontsize=10];']
    for node, shape in nodes:
        label = labels[node]
        if node.prim is None:
            extra = ""
            if node.grad is not None:
                extra = f"\\n‖{label}̄‖ = {np.linalg.norm(leaf_grad(node)):.4g}"
            lines.append(f'  n{node.seq} [shape=box, style=filled, fillcolor="#dbe9f6", '
                         f'label="{label}\\n{_fmt_shape(shape)}{extra}"];')
        else:
            lines.append(f'  n{node.seq} [shape=ellipse, label="{label} = {node.prim.name}\\n'
                         f'{_fmt_shape(shape)}"];')
    for node, _ in nodes:
        for argnum, parent in node.parents or ():
            lines.append(f"  n{parent.seq} -> n{node.seq} [label=\"{argnum}\"];")
    if not nodes:
        lines.append(f'  t [shape=box, label="constant\\n{_fmt_shape(_shape(tensor))}"];')
    lines.append("}")
    return "\n".join(lines) + "\n"


def render(tensor, path, names=None, format=None):
    """Write the graph as an image with the ``graphviz`` package (an optional dependency)."""
    try:
        import graphviz
    except ImportError as exc:
        raise ImportError("fastgrad.viz.render needs the graphviz package: pip install graphviz "
                          "(and the Graphviz 'dot' program); to_dot() needs neither") from exc
    import os

    stem, ext = os.path.splitext(str(path))
    source = graphviz.Source(to_dot(tensor, names))
    return source.render(stem, format=format or (ext.lstrip(".") or "png"), cleanup=True)


# ------------------------------------------------------------------------ explain --


def _size(shape):
    return int(np.prod(shape)) if shape else 1


def _arg_shapes(node):
    """The shapes of a node's arguments: its parents' (always known), a constant's while
    the node still holds it (None once a backward freed it)."""
    parents = dict(node.parents or ())
    shapes = []
    for i in range(node.nargs):
        if i in parents:
            shapes.append(parents[i].shape)
        elif node.args is not None:
            shapes.append(_shape(node.args[i]))
        else:
            shapes.append(None)
    return shapes


def _explain_node(node, shape, labels):
    """(forward formula, [(backward formula, MACs)], forward MACs) for one node, from its
    primitive's registry entry (``Formula``)."""
    prim = node.prim
    out = labels[node]
    parents = dict(node.parents or ())
    arg_shapes = _arg_shapes(node)

    def p(i):  # the name of argument i: a parent's label, a named constant, or its value
        if i in parents:
            return labels[parents[i]]
        a = node.args[i] if node.args is not None and i < len(node.args) else None
        if id(a) in labels:
            return labels[id(a)]
        v = np.asarray(a._data if isinstance(a, Tensor) else a) if a is not None else None
        if v is not None and v.size == 1 and v.dtype.kind in "biuf":  # a number, not einsum's 'ij'
            return f"{float(v.reshape(())):g}"
        return "c"

    names = [p(i) for i in range(len(arg_shapes))]
    formula = prim.formula
    if formula is None:  # a primitive nobody registered (fastgrad.extend): the chain rule
        fwd = f"{out} = {prim.name}({', '.join(names)})"
        bwd = [(f"{names[i]}̄ = {out}̄ ∂{out}/∂{names[i]}", None) for i in sorted(parents)]
        return fwd, bwd, None
    try:
        fwd_macs, bwd_macs = formula.macs(shape, arg_shapes)
    except (TypeError, IndexError):  # a shape the freed graph no longer knows
        fwd_macs, bwd_macs = None, {}
    fwd = formula.forward.format(*names, out=out)
    bwd = []
    for i in sorted(parents):
        rule = formula.backward.get(i)
        text = rule.format(*names, out=out) if rule else f"{names[i]}̄ = {out}̄ ∂{out}/∂{names[i]}"
        if formula.broadcasts and arg_shapes[i] is not None and shape is not None \
                and tuple(arg_shapes[i]) != tuple(shape):
            text += " (summed over broadcast axes)"
        bwd.append((text, bwd_macs.get(i)))
    return fwd, bwd, fwd_macs


def _macs(n):
    return "?" if n is None else f"{n:,}"


def explain(tensor, names=None) -> str:
    """The backward pass of ``tensor``'s graph as the lecture writes it, with costs.

    One line per node in reverse topological order: the error-signal rule it applies, the
    shapes, and multiply-adds forward and backward (matrix products count one per
    weight per example; elementwise steps one per element). Ends with the totals and the
    ratio backward/forward.
    """
    nodes = graph_nodes(tensor)
    if not nodes:
        return "a constant: nothing was recorded (no input requires grad)\n"
    labels = _names(nodes, names)
    rows = []
    total_f = total_b = 0
    for node, shape in reversed(nodes):
        if node.prim is None:
            continue
        fwd, bwd, f_macs = _explain_node(node, shape, labels)
        total_f += f_macs or 0
        total_b += sum(m or 0 for _, m in bwd)
        rows.append((fwd, _fmt_shape(shape), bwd, f_macs))
    root = labels[nodes[-1][0]]
    out = [f"backward pass of {root} ({_fmt_shape(_shape(tensor))}), children before parents:",
           f"  {root}̄ = 1"]
    width = max(len(r[0]) for r in rows)
    for fwd, shape, bwd, f_macs in rows:
        out.append(f"  {fwd:<{width}}  [{shape}]  forward {_macs(f_macs)} MAC")
        for rule, macs in bwd:
            out.append(f"      {rule}   ({_macs(macs)} MAC)")
    leaves = [(labels[n], s) for n, s in nodes if n.prim is None]
    if leaves:
        out.append("  leaves: " + ", ".join(f"{n} [{_fmt_shape(s)}]" for n, s in leaves))
    ratio = total_b / total_f if total_f else math.nan
    out.append(f"total: forward {total_f:,} MAC, backward {total_b:,} MAC, "
               f"backward/forward = {ratio:.2f}")
    return "\n".join(out) + "\n"
