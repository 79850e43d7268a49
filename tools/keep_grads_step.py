"""The README-style compiled step (opt.zero_grad() first, .grad kept) beside the fused one
(compile(step, keep_grads=False)) on the `fastgrad bench` MLP workloads, interleaved in
one process, one BLAS thread:

    PYTHONPATH=src taskset -c 1 python tools/keep_grads_step.py W1-f64,W1-f32,W4

Prints each step's median time over 7 rounds and kept ÷ fused.
"""

import sys
import time

import numpy as np
from threadpoolctl import threadpool_limits

import fastgrad as fg
from fastgrad.bench import workloads

F = fg.nn.functional


def build(name, keep_grads):
    w = workloads.get(name)
    d = w.make_data()
    params = [(fg.tensor(W, requires_grad=True), fg.tensor(b, requires_grad=True)) for W, b in d.params]
    opt = fg.optim.SGD([p for pair in params for p in pair], lr=w.lr)

    def step(x, t):
        opt.zero_grad()
        h = x
        for W, b in params[:-1]:
            h = F.sigmoid(F.linear(h, W, b))
        W, b = params[-1]
        loss = F.squared_error(F.linear(h, W, b), t)
        loss.backward()
        opt.step()
        return loss

    compiled = fg.compile(step, keep_grads=keep_grads)
    compiled(d.x, d.t)  # the trace
    return lambda: compiled(d.x, d.t)


def seconds(f, n):
    start = time.perf_counter()
    for _ in range(n):
        f()
    return (time.perf_counter() - start) / n


def main(names):
    with threadpool_limits(1):
        for name in names:
            fused, kept = build(name, False), build(name, True)
            n = max(3, int(0.05 / seconds(fused, 3)))
            tf, tk = [], []
            for _ in range(7):
                tf.append(seconds(fused, n))
                tk.append(seconds(kept, n))
            mf, mk = np.median(tf), np.median(tk)
            print(f"{name}: fused {mf * 1e3:.3f} ms  kept {mk * 1e3:.3f} ms  kept/fused {mk / mf:.2f}")


if __name__ == "__main__":
    main(sys.argv[1].split(",") if len(sys.argv) > 1 else ["W1-f64", "W1-f32", "W4"])
