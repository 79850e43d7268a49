"""fastgrad.viz: the graph as DOT, and the backward pass explained with its costs."""

import re

import numpy as np
import pytest

import fastgrad as fg
import fastgrad.nn.functional as F


def _mlp(sizes, batch, rng):
    params = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        params.append(fg.tensor(rng.standard_normal((b, a)), requires_grad=True))
        params.append(fg.tensor(rng.standard_normal(b), requires_grad=True))
    x = fg.tensor(rng.standard_normal((batch, sizes[0])))
    h = x
    for i in range(0, len(params), 2):
        h = F.linear(h, params[i], params[i + 1])
        if i + 2 < len(params):
            h = F.sigmoid(h)
    loss = 0.5 * ((h - 1.0) ** 2).sum()
    return loss, params, x


def test_to_dot_lists_every_node_and_edge():
    rng = np.random.default_rng(0)
    loss, params, x = _mlp([4, 3, 2], 5, rng)
    dot = fg.viz.to_dot(loss, names={"W1": params[0]})
    assert dot.startswith("digraph fastgrad {") and dot.rstrip().endswith("}")
    nodes = fg.viz.graph_nodes(loss)
    assert len(re.findall(r"^\s+n\d+ \[", dot, re.M)) == len(nodes)
    edges = sum(len(n.parents) for n, _ in nodes)
    assert len(re.findall(r"->", dot)) == edges
    assert 'label="W1\\n3×4"' in dot
    assert "linear" in dot and "sigmoid" in dot


def test_to_dot_shows_error_signal_norms_after_backward():
    w = fg.tensor([3.0, 4.0], requires_grad=True)
    loss = (w * 1.0).sum()
    loss.backward(retain_graph=True)
    dot = fg.viz.to_dot(loss, names={"w": w})
    assert "‖" in dot and "1.414" in dot  # ‖w̄‖ = ‖(1, 1)‖


def test_explain_counts_the_lectures_multiply_adds():
    """Forward N·Σ aᵢaᵢ₊₁; backward: every weight gradient, and the input gradient of every
    layer but the first (so backward ≈ 2 forward passes for deep nets)."""
    rng = np.random.default_rng(1)
    sizes, N = [6, 5, 4, 3], 7
    loss, params, x = _mlp(sizes, N, rng)
    text = fg.explain(loss, names={"x": x})
    matmul_fwd = N * sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    matmul_bwd = matmul_fwd + N * sum(a * b for a, b in zip(sizes[1:-1], sizes[2:]))
    assert "= x v1ᵀ + v2" in text and "σ'" in text
    fwd, bwd = (int(v.replace(",", "")) for v in re.search(
        r"forward ([\d,]+) MAC, backward ([\d,]+) MAC", text).groups())
    assert matmul_fwd <= fwd <= matmul_fwd + 10 * N * sum(sizes)
    assert matmul_bwd <= bwd <= matmul_bwd + 10 * N * sum(sizes)
    # Each backward rule appears in reverse topological order: the output layer first.
    assert text.index("̄ = Σₙ") < text.rindex("σ'")


def test_explain_of_a_constant_and_after_backward():
    assert "constant" in fg.explain(fg.tensor(1.0))
    W = fg.tensor(np.ones((3, 4)), requires_grad=True)
    x = np.ones((2, 4))
    loss = (fg.nn.functional.sigmoid(x @ W.T) ** 2).sum()
    before = fg.explain(loss, names={"W": W})
    loss.backward()  # the buffers go, the graph's structure and shapes stay (as PyTorch's)
    after = fg.explain(loss, names={"W": W})
    assert before.splitlines()[:3] == after.splitlines()[:3]
    assert "σ'" in after and "W̄" in after and "[2×3]" in after
    assert "digraph" in fg.viz.to_dot(loss)


def test_render_writes_an_image_or_names_what_is_missing(tmp_path):
    y = fg.tensor(1.0, requires_grad=True) * 2
    try:
        import graphviz  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="pip install graphviz"):
            fg.viz.render(y, tmp_path / "g.png")
        return
    out = fg.viz.render(y, tmp_path / "g.svg")
    assert open(out).read().lstrip().startswith("<?xml")
