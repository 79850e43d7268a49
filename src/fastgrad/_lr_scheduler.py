"""Learning-rate schedules, as ``torch.optim.lr_scheduler`` (imported as ``fastgrad.optim.lr_scheduler``).

A scheduler sets its optimizer's ``lr`` once per epoch: construct it (which sets the
epoch-0 rate), train an epoch, call ``scheduler.step()``. Names, arguments and rates are
PyTorch's, for an optimizer with one parameter group.

>>> from fastgrad.optim.lr_scheduler import CosineAnnealingLR
>>> opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
>>> scheduler = CosineAnnealingLR(opt, T_max=20)
>>> for epoch in range(20):
...     train_one_epoch(model, opt)
...     scheduler.step()
"""

from __future__ import annotations

import math

__all__ = ["LRScheduler", "StepLR", "CosineAnnealingLR"]


def _check_int(owner, name, value, low):
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{owner}: {name} must be an int >= {low}, got {value!r}")
    return value


def _check_float(owner, name, value, low=0.0):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{owner}: {name} must be a number, got {type(value).__name__}")
    if not math.isfinite(value) or value < low:
        raise ValueError(f"{owner}: {name} must be a finite number >= {low}, got {value}")
    return float(value)


class LRScheduler:
    """Base class: subclasses define ``lr_at(epoch)`` from ``self.base_lr``.

    ``last_epoch`` counts the ``step()`` calls (0 after construction, as in PyTorch);
    ``get_last_lr()`` is the rate last set, as a one-element list (one parameter group).
    """

    def __init__(self, optimizer, last_epoch: int = -1):
        from .optim import Optimizer

        owner = type(self).__name__
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{owner}: optimizer must be a fastgrad.optim optimizer, got {type(optimizer).__name__}")
        if not hasattr(optimizer, "lr"):
            raise TypeError(f"{owner}: {type(optimizer).__name__} has no lr to schedule")
        _check_int(owner, "last_epoch", last_epoch, -1)
        if last_epoch == -1:
            optimizer.initial_lr = optimizer.lr
        elif not hasattr(optimizer, "initial_lr"):
            # PyTorch's rule: resuming needs the rate the schedule started from.
            raise KeyError(
                f"{owner}: last_epoch={last_epoch} resumes a schedule, but the optimizer has no "
                "initial_lr (set optimizer.initial_lr, or load the scheduler's state_dict)"
            )
        self.optimizer = optimizer
        self.base_lr = optimizer.initial_lr
        self.last_epoch = last_epoch
        self.step()

    def lr_at(self, epoch: int) -> float:
        raise NotImplementedError(f"{type(self).__name__} does not define lr_at()")

    def step(self) -> None:
        """Advance one epoch and set the optimizer's learning rate for it."""
        self.last_epoch += 1
        self.optimizer.lr = self._last_lr = float(self.lr_at(self.last_epoch))

    def get_last_lr(self) -> list:
        return [self._last_lr]

    def state_dict(self) -> dict:
        return {k: v for k, v in vars(self).items() if k != "optimizer"}

    def load_state_dict(self, state_dict: dict) -> None:
        vars(self).update(state_dict)

    def __repr__(self):
        return f"{type(self).__name__}(last_epoch={self.last_epoch}, lr={self._last_lr:g})"


class StepLR(LRScheduler):
    """η_epoch = η₀ γ^⌊epoch / step_size⌋: the rate times ``gamma`` every ``step_size`` epochs."""

    def __init__(self, optimizer, step_size: int, gamma: float = 0.1, last_epoch: int = -1):
        self.step_size = _check_int("StepLR", "step_size", step_size, 1)
        self.gamma = _check_float("StepLR", "gamma", gamma)
        super().__init__(optimizer, last_epoch)

    def lr_at(self, epoch):
        return self.base_lr * self.gamma ** (epoch // self.step_size)


class CosineAnnealingLR(LRScheduler):
    """η_epoch = η_min + ½ (η₀ − η_min)(1 + cos(π epoch / T_max)).

    From η₀ at epoch 0 down to ``eta_min`` at ``T_max``; past ``T_max`` the cosine goes
    on (back up over the next ``T_max`` epochs), as PyTorch's does.
    """

    def __init__(self, optimizer, T_max: int, eta_min: float = 0.0, last_epoch: int = -1):
        self.T_max = _check_int("CosineAnnealingLR", "T_max", T_max, 1)
        self.eta_min = _check_float("CosineAnnealingLR", "eta_min", eta_min)
        super().__init__(optimizer, last_epoch)

    def lr_at(self, epoch):
        cosine = 1.0 + math.cos(math.pi * epoch / self.T_max)
        return self.eta_min + (self.base_lr - self.eta_min) * cosine / 2.0
