"""A guard that checks, while a PyTorch model trains, that its BatchNorm statistics move.

>>> from bncheck.torch import BatchNormGuard
>>> guard = BatchNormGuard(model, optimizer)  # hooks optimizer.step(); without an optimizer call guard.step()

After ``after_steps`` optimizer steps it runs the rules of ``bncheck inspect`` and ``bncheck diff`` on the BN
modules (:mod:`bncheck.guarding`): statistics still 0/1 or unchanged while weight/bias trained (BN002, BN201),
NaN/Inf or negative variance (BN004/BN005, every ``every`` steps), a module declared ``frozen`` whose
statistics moved (BN202). Error findings raise :class:`~bncheck.errors.BatchNormStateError`; warnings are
logged (logger ``bncheck``). This module imports torch: ``import bncheck`` does not import it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import torch
from torch.nn.modules.batchnorm import _BatchNorm

from .config import Settings
from .facts import Framework, LayerHints
from .guarding import Guard, LiveLayer, Monitor

__all__ = ["BatchNormGuard"]

ROLES = {"weight": "gamma", "bias": "beta", "running_mean": "moving_mean", "running_var": "moving_variance"}


def bn_modules(model: torch.nn.Module) -> Iterator[tuple[str, torch.nn.Module]]:
    """(name, module) of every BN module with running statistics, as ``state_dict()`` names them."""
    for name, module in model.named_modules():
        frozen = type(module).__name__.startswith("FrozenBatchNorm")
        if (isinstance(module, _BatchNorm) or frozen) and getattr(module, "running_mean", None) is not None:
            yield name or "(root)", module


def _copy(tensor: torch.Tensor) -> Any:
    """A numpy copy of ``tensor`` (bfloat16 as float32: numpy has no bfloat16)."""
    tensor = tensor.detach()
    if tensor.dtype == torch.bfloat16:
        return tensor.float().cpu().numpy()
    return tensor.to("cpu", copy=True).numpy()


def is_frozen(module: torch.nn.Module) -> bool:
    """FrozenBatchNorm2d, or a module whose own weight and bias take no gradient (``requires_grad=False``)."""
    if type(module).__name__.startswith("FrozenBatchNorm"):
        return True
    parameters = [p for p in (getattr(module, "weight", None), getattr(module, "bias", None)) if p is not None]
    return bool(parameters) and all(isinstance(p, torch.nn.Parameter) and not p.requires_grad for p in parameters)


def live_layer(name: str, module: torch.nn.Module) -> LiveLayer:
    """The BN module ``name`` as the guard judges it: its tensors by role, its momentum (as the weight of the
    history, like the readers of saved files), epsilon, frozenness and update count."""
    values = {
        role: _copy(t) for key, role in ROLES.items() if isinstance(t := getattr(module, key, None), torch.Tensor)
    }
    momentum = getattr(module, "momentum", None)
    counted = getattr(module, "num_batches_tracked", None)
    hints = LayerHints(
        momentum=1.0 - momentum if isinstance(momentum, float | int) else None,
        epsilon=float(module.eps) if isinstance(getattr(module, "eps", None), float | int) else None,
        trainable=not is_frozen(module),
        batches_tracked=int(counted) if isinstance(counted, torch.Tensor) else None,
    )
    return LiveLayer(name, values, hints)


class BatchNormGuard(Guard):
    """Checks the BN state of ``model`` after the optimizer's steps.

    ``optimizer``: its ``step()`` is hooked (``register_step_post_hook``); without one, call :meth:`step` after
    each ``optimizer.step()``. ``after_steps``: when the rules on whether the statistics move are judged (and
    again every ``after_steps``, each time against the previous judgement); ``every``: how often NaN/Inf and
    negative variances are looked for (None: with the others only). ``on_failure``: "raise"
    (:class:`~bncheck.errors.BatchNormStateError` for error findings, warnings logged), "warn" (all logged) or
    "stop" (all logged; :meth:`step` returns True and ``stop_requested`` is set). ``frozen``: module-name globs
    that must not change at all (BN202); modules frozen by PyTorch (FrozenBatchNorm2d, weight and bias with
    ``requires_grad=False``) are expected not to train. ``settings``: a :class:`~bncheck.config.Settings`
    (select, ignore, thresholds, ``fail_on``), as ``bncheck inspect`` takes.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer | None = None,
        after_steps: int = 50,
        *,
        every: int | None = 10,
        on_failure: str = "raise",
        frozen: str | Iterable[str] = (),
        settings: Settings | None = None,
    ) -> None:
        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"BatchNormGuard: model must be a torch.nn.Module, not {type(model).__name__}")
        self.model = model
        self.monitor = Monitor(
            Framework.TORCH,
            after_steps=after_steps,
            every=every,
            on_failure=on_failure,
            frozen=frozen,
            settings=settings,
            label=f"{type(model).__name__} in training",
        )
        self.monitor.start(self._layers())
        self._hook = optimizer.register_step_post_hook(self._after_step) if optimizer is not None else None

    def step(self) -> bool:
        """Count one optimizer step and judge the model when due; True when the loop should stop."""
        return self.monitor.count(self._judged_layers)

    def remove(self) -> None:
        """Unhook the optimizer (the guard then judges only on :meth:`step`)."""
        if self._hook is not None:
            self._hook.remove()
            self._hook = None

    def _after_step(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        self.step()

    def _layers(self) -> list[LiveLayer]:
        return [live_layer(name, module) for name, module in bn_modules(self.model)]

    def _judged_layers(self) -> list[LiveLayer]:
        self._look_at_modes()
        return self._layers()

    def _look_at_modes(self) -> None:
        """Warn about BN modules in eval mode whose weight/bias receive gradients: they train without updating
        their running statistics (the model left in ``eval()`` after a validation pass)."""
        for name, module in bn_modules(self.model):
            if module.training or is_frozen(module):
                continue
            parameters = [getattr(module, "weight", None), getattr(module, "bias", None)]
            if any(isinstance(p, torch.Tensor) and p.grad is not None for p in parameters):
                self.monitor.note(
                    f"{name} is in eval mode but its weight/bias receive gradients: its running statistics do not "
                    "update (call model.train() before training, and again after each validation pass)"
                )
