"""PyTorch (eager) on the standard workloads: the same three callables as fastgrad's.

Pinned: ``pip install torch==2.13.0`` (the version the published figures use).
"""

from __future__ import annotations

from fastgrad.bench.impls import Impl
from fastgrad.bench.workloads import MLPData, ScalarData


class TorchBase(Impl):
    name = "torch"
    label = "PyTorch eager"

    def __init__(self, workload, data):
        super().__init__(workload, data)
        import torch

        self.torch = torch


class TorchMLP(TorchBase):
    def __init__(self, workload, data: MLPData):
        super().__init__(workload, data)
        torch = self.torch
        self.params = [
            (
                torch.tensor(W, requires_grad=True),
                torch.tensor(b, requires_grad=True),
            )
            for W, b in data.params
        ]
        self.flat = [p for pair in self.params for p in pair]
        self.x = torch.from_numpy(data.x)
        self.t = torch.from_numpy(data.t)
        self.scale = 0.5 / data.x.shape[0]
        self.lr = workload.lr
        self.linear = torch.nn.functional.linear

    def forward(self):
        h = self.x
        linear, sigmoid = self.linear, self.torch.sigmoid
        for W, b in self.params[:-1]:
            h = sigmoid(linear(h, W, b))
        W, b = self.params[-1]
        return ((linear(h, W, b) - self.t) ** 2).sum() * self.scale

    def forward_backward(self):
        for p in self.flat:
            p.grad = None
        loss = self.forward()
        loss.backward()
        return loss

    def step(self):
        for p in self.flat:
            p.grad = None
        self.forward().backward()
        with self.torch.no_grad():
            for p in self.flat:
                p.sub_(p.grad, alpha=self.lr)

    def gradients(self):
        self.forward_backward()
        return [p.grad.numpy().copy() for p in self.flat]

    def parameters(self):
        return [p.detach().numpy().copy() for p in self.flat]


class TorchScalar(TorchBase):
    def __init__(self, workload, data: ScalarData):
        super().__init__(workload, data)
        torch = self.torch
        self.t = torch.tensor(data.t, dtype=torch.float64, requires_grad=True)
        self.consts = data.consts
        self.s1 = workload.family == "S1"
        self.lr = workload.lr

    def forward(self):
        torch, t = self.torch, self.t
        if self.s1:
            x = torch.cos(t)
            y = t * t
            return y + torch.exp(x * y)
        exp, sin = torch.exp, torch.sin
        v = t
        for a in self.consts:
            v = v + exp(sin(v * a))
        return v

    def forward_backward(self):
        self.t.grad = None
        f = self.forward()
        f.backward()
        return f

    def step(self):
        self.t.grad = None
        self.forward().backward()
        with self.torch.no_grad():
            self.t.sub_(self.t.grad, alpha=self.lr)

    def gradients(self):
        self.forward_backward()
        return [self.t.grad.numpy().copy()]

    def parameters(self):
        return [self.t.detach().numpy().copy()]
