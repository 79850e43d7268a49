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

from . import _tape
from ._tape import Tensor

__all__ = ["to_dot", "render", "explain", "graph_nodes"]


def _shape(x):
    if isinstance(x, Tensor):
        return tuple(x.shape)
    return tuple(np.shape(x))


def graph_nodes(tensor):
    """The nodes that computed ``tensor``, parents before children, with output shapes.

    Returns a list of (node, shape) in topological (recording) order.
    """
    root = tensor._node
    if root is None:
        return []
    shapes = {root: _shape(tensor)}
    stack = [root]
    while stack:
        node = stack.pop()
        for argnum, parent in node.parents or ():
            if parent not in shapes:
                shapes[parent] = _shape(node.args[argnum]) if node.args is not None else ()
                stack.append(parent)
    return sorted(shapes.items(), key=lambda item: item[0].seq)


def _fmt_shape(shape):
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
                extra = f"\\n‖{label}̄‖ = {np.linalg.norm(_tape.leaf_grad(node)):.4g}"
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


def _explain_node(node, shape, labels):
    """(forward formula, [backward formulas], forward MACs, backward MACs) for one node."""
    name = node.prim.name
    out = labels[node]
    parents = dict(node.parents or ())
    arg_shapes = [_shape(a) for a in (node.args or ())]

    def p(i):  # the name of argument i: a parent's label, a named constant, or its value
        if i in parents:
            return labels[parents[i]]
        a = node.args[i] if node.args is not None and i < len(node.args) else None
        if id(a) in labels:
            return labels[id(a)]
        if a is not None and np.size(a._data if isinstance(a, Tensor) else a) == 1:
            return f"{float(np.asarray(a._data if isinstance(a, Tensor) else a).reshape(())):g}"
        return "c"

    n_out = _size(shape)
    bwd = []
    fwd_macs = n_out
    bwd_macs = 0
    if name == "linear":
        x, W = p(0), p(1)
        N = _size(arg_shapes[0][:-1])
        M, D = arg_shapes[1]
        fwd = f"{out} = {x} {W}ᵀ + {p(2) if len(arg_shapes) > 2 else '0'}"
        fwd_macs = N * M * D
        if 1 in parents:
            bwd.append((f"{W}̄ = {out}̄ᵀ {x}", N * M * D))
        if 0 in parents:
            bwd.append((f"{x}̄ = {out}̄ {W}", N * M * D))
        if 2 in parents:
            bwd.append((f"{p(2)}̄ = Σₙ {out}̄ₙ", N * M))
    elif name == "matmul":
        a, b = p(0), p(1)
        k = arg_shapes[0][-1]
        fwd_macs = n_out * k
        fwd = f"{out} = {a} {b}"
        if 0 in parents:
            bwd.append((f"{a}̄ = {out}̄ {b}ᵀ", n_out * k))
        if 1 in parents:
            bwd.append((f"{b}̄ = {a}ᵀ {out}̄", n_out * k))
    elif name == "sigmoid":
        fwd = f"{out} = σ({p(0)})"
        bwd.append((f"{p(0)}̄ = {out}̄ ∘ {out} ∘ (1 − {out})  [= {out}̄ ∘ σ'({p(0)})]", 2 * n_out))
    elif name in ("add", "subtract", "multiply", "true_divide", "power", "maximum", "minimum"):
        sym = {"add": "+", "subtract": "−", "multiply": "∘", "true_divide": "/", "power": "^",
               "maximum": "max", "minimum": "min"}[name]
        fwd = f"{out} = {p(0)} {sym} {p(1)}" if name not in ("maximum", "minimum") else \
            f"{out} = {sym}({p(0)}, {p(1)})"
        local = {
            "add": ("{o}̄", "{o}̄"), "subtract": ("{o}̄", "−{o}̄"),
            "multiply": ("{o}̄ ∘ {b}", "{o}̄ ∘ {a}"), "true_divide": ("{o}̄ / {b}", "−{o}̄ ∘ {a} / {b}²"),
            "power": ("{o}̄ ∘ {b} {a}^({b}−1)", "{o}̄ ∘ log({a}) {o}"),
            "maximum": ("{o}̄ where {a} is larger", "{o}̄ where {b} is larger"),
            "minimum": ("{o}̄ where {a} is smaller", "{o}̄ where {b} is smaller"),
        }[name]
        for i in (0, 1):
            if i in parents:
                rule = local[i].format(o=out, a=p(0), b=p(1))
                summed = " (summed over broadcast axes)" if arg_shapes[i] != shape else ""
                bwd.append((f"{p(i)}̄ = {rule}{summed}", n_out if name != "add" else 0))
    elif name in ("sum", "mean"):
        fwd = f"{out} = {name}({p(0)})"
        fwd_macs = _size(arg_shapes[0])
        bwd.append((f"{p(0)}̄ = {out}̄ repeated over the reduced axes" + (" / n" if name == "mean" else ""),
                    _size(arg_shapes[0]) if name == "mean" else 0))
    else:
        unary = {"exp": ("exp({a})", "{o}̄ ∘ {o}"), "log": ("log({a})", "{o}̄ / {a}"),
                 "tanh": ("tanh({a})", "{o}̄ ∘ (1 − {o}²)"), "relu": ("max({a}, 0)", "{o}̄ ∘ [{a} > 0]"),
                 "sin": ("sin({a})", "{o}̄ ∘ cos({a})"), "cos": ("cos({a})", "−{o}̄ ∘ sin({a})"),
                 "sqrt": ("√{a}", "{o}̄ / (2 {o})"), "negative": ("−{a}", "−{o}̄"),
                 "softmax": ("softmax({a})", "{o} ∘ ({o}̄ − Σ {o}̄ ∘ {o})"),
                 "log_softmax": ("log_softmax({a})", "{o}̄ − softmax({a}) Σ {o}̄"),
                 "reshape": ("reshape({a})", "reshape({o}̄)"), "transpose": ("{a}ᵀ", "{o}̄ᵀ"),
                 "getitem": ("{a}[index]", "{o}̄ scattered into zeros (repeats add)")}
        if name in unary and 0 in parents:
            f, b = unary[name]
            fwd = f"{out} = " + f.format(a=p(0))
            bwd.append((f"{p(0)}̄ = " + b.format(o=out, a=p(0)), n_out))
        else:
            fwd = f"{out} = {name}({', '.join(p(i) for i in range(len(arg_shapes)))})"
            for i in sorted(parents):
                bwd.append((f"{p(i)}̄ = {out}̄ ∂{out}/∂{p(i)}", n_out))
        if name in ("reshape", "transpose", "getitem", "negative"):
            fwd_macs = 0
    bwd_macs = sum(m for _, m in bwd)
    return fwd, bwd, fwd_macs, bwd_macs


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
    if nodes[-1][0].parents is None:
        return "this graph was already swept by backward() and freed; call explain() before backward()\n"
    labels = _names(nodes, names)
    rows = []
    total_f = total_b = 0
    for node, shape in reversed(nodes):
        if node.prim is None:
            continue
        fwd, bwd, f_macs, b_macs = _explain_node(node, shape, labels)
        total_f += f_macs
        total_b += b_macs
        rows.append((fwd, _fmt_shape(shape), bwd, f_macs, b_macs))
    root = labels[nodes[-1][0]]
    out = [f"backward pass of {root} ({_fmt_shape(_shape(tensor))}), children before parents:",
           f"  {root}̄ = 1"]
    width = max(len(r[0]) for r in rows)
    for fwd, shape, bwd, f_macs, _ in rows:
        out.append(f"  {fwd:<{width}}  [{shape}]  forward {f_macs:,} MAC")
        for rule, macs in bwd:
            out.append(f"      {rule}   ({macs:,} MAC)")
    leaves = [(labels[n], s) for n, s in nodes if n.prim is None]
    if leaves:
        out.append("  leaves: " + ", ".join(f"{n} [{_fmt_shape(s)}]" for n, s in leaves))
    ratio = total_b / total_f if total_f else math.nan
    out.append(f"total: forward {total_f:,} MAC, backward {total_b:,} MAC, "
               f"backward/forward = {ratio:.2f}")
    return "\n".join(out) + "\n"
