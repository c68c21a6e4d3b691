"""A guard that checks, while a Keras model trains, that its BatchNormalization statistics move.

>>> from bncheck.keras import BatchNormGuard
>>> model.fit(x, y, callbacks=[BatchNormGuard()])  # Keras 3 (any backend) and tf_keras
>>> guard = BatchNormGuard(model=model)  # a custom loop: guard.step() after each optimizer step

After ``after_steps`` steps it runs the rules of ``bncheck inspect`` and ``bncheck diff`` on the BN layers
(:mod:`bncheck.guarding`): statistics still 0/1 or unchanged while gamma/beta trained (BN002, BN201: the
layer ran in inference mode, called with ``training=False`` or without ``training=True`` in a loop that
applies gradients), NaN/Inf or negative variance (BN004/BN005, every ``every`` steps), a layer declared
``frozen`` that moved (BN202). Error findings raise :class:`~bncheck.errors.BatchNormStateError`; warnings
are logged (logger ``bncheck``). The guard speaks Keras's callback protocol without importing Keras: the
model hands it its variables.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from .config import Settings
from .facts import Framework, LayerHints
from .guarding import Guard, LiveLayer, Monitor

__all__ = ["BatchNormGuard"]

ROLES = ("gamma", "beta", "moving_mean", "moving_variance")
STALE = (
    "the layer ran in inference mode while the optimizer trained it: it was called with training=False, or "
    "without training=True (training=None) in a loop that applies gradients"
)


def is_bn(layer: Any) -> bool:
    """A BatchNormalization layer (or a subclass, SyncBatchNormalization) of Keras 3 or tf_keras, by what it
    holds: moving statistics, a momentum and an epsilon."""
    return all(hasattr(layer, name) for name in ("moving_mean", "moving_variance", "momentum", "epsilon"))


def bn_layers(model: Any) -> Iterator[Any]:
    """Every BN layer of ``model``, nested models included, each once, in the model's order."""
    flatten = getattr(model, "_flatten_layers", None)
    if flatten is not None:  # Keras 3 and tf_keras: every layer of the tree, once
        layers = list(flatten(include_self=True, recursive=True))
    else:
        layers, stack = [], [model]
        while stack:
            current = stack.pop(0)
            layers.append(current)
            stack[:0] = list(getattr(current, "layers", ()))
    yield from (layer for layer in layers if is_bn(layer))


def _value(variable: Any) -> np.ndarray:
    """A numpy copy of a Keras (or tf.Variable) variable's value."""
    value = variable.numpy() if hasattr(variable, "numpy") else variable
    return np.array(value, copy=True)


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def live_layers(model: Any) -> list[LiveLayer]:
    """The BN layers of ``model`` as the guard judges them, named as a saved ``.keras``/``.h5`` file names them
    (the layer's name; its path when two layers share one)."""
    layers = list(bn_layers(model))
    names = [layer.name for layer in layers]
    found = []
    for layer, name in zip(layers, names, strict=True):
        if names.count(name) > 1:
            name = str(getattr(layer, "path", name))
        values = {role: _value(v) for role in ROLES if (v := getattr(layer, role, None)) is not None}
        hints = LayerHints(_number(layer.momentum), _number(layer.epsilon), bool(layer.trainable))
        found.append(LiveLayer(name, values, hints))
    return found


class BatchNormGuard(Guard):
    """A Keras callback (``model.fit(..., callbacks=[BatchNormGuard()])``) that checks the BN state of the
    model after its optimizer steps; for a custom loop ``BatchNormGuard(model=m)`` and :meth:`step` after each
    step.

    ``after_steps``: when the rules on whether the statistics move are judged (and again every
    ``after_steps``, each time against the previous judgement); ``every``: how often NaN/Inf and negative
    variances are looked for (None: with the others only). ``on_failure``: "raise"
    (:class:`~bncheck.errors.BatchNormStateError` for error findings, warnings logged), "warn" (all logged) or
    "stop" (all logged; ``fit`` ends after the step, :meth:`step` returns True). ``frozen``: layer-name globs
    that must not change at all (BN202); layers with ``trainable=False`` are expected not to train.
    ``settings``: a :class:`~bncheck.config.Settings` (select, ignore, thresholds, ``fail_on``).
    """

    _supports_tf_logs = True  # tf_keras: the logs are not read, so they need not be converted

    def __init__(
        self,
        after_steps: int = 50,
        model: Any = None,
        *,
        every: int | None = 10,
        on_failure: str = "raise",
        frozen: str | Iterable[str] = (),
        settings: Settings | None = None,
    ) -> None:
        self.monitor = Monitor(
            Framework.KERAS,
            after_steps=after_steps,
            every=every,
            on_failure=on_failure,
            frozen=frozen,
            settings=settings,
            stale_cause=STALE,
        )
        self.model: Any = None
        self.params: dict[str, Any] = {}
        self._started = False
        if model is not None:
            self.set_model(model)
            self._start()

    def step(self) -> bool:
        """Count one optimizer step and judge the model when due; True when the loop should stop."""
        if self.model is None:
            raise RuntimeError("BatchNormGuard.step(): no model (BatchNormGuard(model=m), or pass it to fit)")
        self._start()
        return self.monitor.count(lambda: live_layers(self.model))

    def _start(self) -> None:
        if not self._started:
            self._started = True
            self.monitor.label = f"{getattr(self.model, 'name', 'the model')} in training"
            self.monitor.start(live_layers(self.model))

    # the callback protocol of Keras 3 and tf_keras

    def set_model(self, model: Any) -> None:
        self.model = model

    def set_params(self, params: dict[str, Any]) -> None:
        self.params = params

    def on_train_begin(self, logs: Any = None) -> None:
        self._start()

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        if self.step():
            self.model.stop_training = True

    def _implements_train_batch_hooks(self) -> bool:
        return True

    def _implements_test_batch_hooks(self) -> bool:
        return False

    def _implements_predict_batch_hooks(self) -> bool:
        return False

    def __getattr__(self, name: str) -> Any:
        """The other hooks of the protocol (``on_epoch_end``, ``on_test_begin``, ...): nothing to do."""
        if name.startswith("on_"):
            return _nothing
        raise AttributeError(name)


def _nothing(*args: Any, **kwargs: Any) -> None:
    return None
