"""The training-time guards on real training loops: bncheck.torch, bncheck.keras (Keras 3 here, tf_keras and
TF1 graphs in a process of their own: tests/guard_scenarios.py), and the monitor they share."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import bncheck
from bncheck.config import Settings
from bncheck.errors import BatchNormStateError, BncheckError
from bncheck.facts import Framework
from bncheck.guarding import LiveLayer, Monitor
from bncheck.torch import BatchNormGuard as TorchGuard

ROOT = Path(__file__).resolve().parent.parent


def _codes(findings: list) -> list[str]:
    return sorted(f"{f.code} {f.layer}" for f in findings)


# --------------------------------------------------------------------------- PyTorch


class Net(torch.nn.Module):
    """conv -> BN -> conv -> BN -> linear: a backbone of two BN modules and a head."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = torch.nn.Sequential(
            torch.nn.Conv2d(3, 8, 3), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
            torch.nn.Conv2d(8, 8, 3), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
        )  # fmt: skip
        self.head = torch.nn.Linear(8 * 4 * 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x).flatten(1))


def _torch_train(model: torch.nn.Module, guard_of, steps: int = 60, lr: float = 0.01, hooked: bool = True):
    """Train ``model`` for ``steps`` SGD steps on a fixed random data set under ``guard_of(model, optimizer)``;
    the guard and what it raised (None)."""
    generator = torch.Generator().manual_seed(0)
    data = torch.randn(steps, 16, 3, 8, 8, generator=generator) * 2 + 1
    labels = torch.randint(0, 3, (steps, 16), generator=generator)
    parameters = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(parameters, lr=lr, momentum=0.9)
    guard = guard_of(model, optimizer if hooked else None)
    try:
        for x, y in zip(data, labels, strict=True):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
            if not hooked:
                guard.step()
    except BatchNormStateError as exc:
        return guard, exc
    return guard, None


def _net(mode: str = "train") -> Net:
    torch.manual_seed(0)
    net = Net()
    getattr(net, mode)()
    return net


def test_torch_loop_in_eval_mode_raises_bn002_with_the_fix_inspect_gives(tmp_path: Path) -> None:
    guard, raised = _torch_train(_net("eval"), TorchGuard)
    assert raised is not None and guard.monitor.steps == 50
    assert _codes(raised.findings) == ["BN002 backbone.1", "BN002 backbone.4"]
    # the same codes, layers and fixes as bncheck inspect on the state dict the run would save
    torch.save(guard.model.state_dict(), tmp_path / "model.pt")
    saved = {(f.code, f.layer): f.fix for f in bncheck.inspect(str(tmp_path / "model.pt")).findings}
    assert {(f.code, f.layer): f.fix for f in raised.findings} == saved
    assert "num_batches_tracked = 0" in str(raised) and "model.train()" in str(raised)


def test_torch_loop_in_train_mode_is_quiet() -> None:
    guard, raised = _torch_train(_net("train"), TorchGuard, steps=120)
    assert raised is None and guard.findings == [] and guard.monitor.steps == 120


def test_torch_guard_without_an_optimizer_counts_the_steps_it_is_told() -> None:
    guard, raised = _torch_train(_net("eval"), lambda m, _: TorchGuard(m, after_steps=20), hooked=False)
    assert raised is not None and guard.monitor.steps == 20


def test_torch_eval_mode_with_gradients_is_a_warning_naming_the_module(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="bncheck"):
        _torch_train(_net("eval"), TorchGuard, steps=10)
    assert "backbone.1 is in eval mode but its weight/bias receive gradients" in caplog.text


def test_torch_frozen_backbone_is_quiet() -> None:
    net = _net("train")
    _torch_train(net, lambda m, o: TorchGuard(m, o, on_failure="warn"), steps=30)  # the pretrained backbone
    for parameter in net.backbone.parameters():
        parameter.requires_grad = False
    net.backbone.eval()  # frozen properly: no gradient, statistics kept
    guard, raised = _torch_train(net, lambda m, o: TorchGuard(m, o, frozen="backbone.*"), steps=100)
    assert raised is None and guard.findings == []


def test_torch_declared_frozen_modules_whose_statistics_move_raise_bn202() -> None:
    net = _net("train")
    for parameter in net.backbone.parameters():
        parameter.requires_grad = False  # requires_grad=False alone: the statistics still update in train mode
    _, raised = _torch_train(net, lambda m, o: TorchGuard(m, o, frozen="backbone.*"))
    assert raised is not None and _codes(raised.findings) == ["BN202 backbone.1", "BN202 backbone.4"]
    assert "frozen= 'backbone.*'" in str(raised) and "between step 0 and step 50" in str(raised)


def test_torch_pretrained_model_left_in_eval_mode_raises_bn201() -> None:
    net = _net("train")
    _torch_train(net, lambda m, o: TorchGuard(m, o, on_failure="warn"), steps=30)  # pretraining
    net.eval()  # the classic slip: validation, then back to training without model.train()
    _, raised = _torch_train(net, TorchGuard)
    assert raised is not None and _codes(raised.findings) == ["BN201 backbone.1", "BN201 backbone.4"]


def test_torch_statistics_that_stop_moving_later_are_caught_in_a_later_window() -> None:
    net = _net("train")
    guard = TorchGuard(net, after_steps=20)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01)
    with pytest.raises(BatchNormStateError) as raised:
        for step in range(80):
            if step == 30:
                net.eval()  # a validation pass that never switches back
            x = torch.randn(16, 3, 8, 8) + 1
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(net(x), torch.zeros(16, dtype=torch.long)).backward()
            optimizer.step()
            guard.step()
    assert guard.monitor.steps == 60  # the window from step 40 to 60 is the first wholly in eval mode
    assert _codes(raised.value.findings) == ["BN201 backbone.1", "BN201 backbone.4"]


def test_torch_nan_is_caught_at_the_next_every_step() -> None:
    net = _net("train")
    guard = TorchGuard(net, after_steps=50, every=5)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01)
    with pytest.raises(BatchNormStateError) as raised:
        for step in range(20):
            x = torch.randn(16, 3, 8, 8)
            if step == 7:
                x[0, 0, 0, 0] = float("nan")
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(net(x), torch.zeros(16, dtype=torch.long)).backward()
            optimizer.step()
            guard.step()
    assert guard.monitor.steps == 10
    assert {f.code for f in raised.value.findings} == {"BN004"}


def test_torch_on_failure_warn_and_stop() -> None:
    guard, raised = _torch_train(_net("eval"), lambda m, o: TorchGuard(m, o, on_failure="warn"))
    assert raised is None and _codes(guard.findings) == ["BN002 backbone.1", "BN002 backbone.4"]
    assert not guard.stop_requested
    net = _net("eval")
    guard = TorchGuard(net, after_steps=5, on_failure="stop")
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01)
    steps = 0
    while not guard.stop_requested and steps < 100:
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(net(torch.randn(4, 3, 8, 8)), torch.zeros(4, dtype=torch.long)).backward()
        optimizer.step()
        steps += 1
        stop = guard.step()
    assert steps == 5 and stop


def test_torch_barely_updated_after_far_fewer_updates_than_steps_is_bn006_not_early() -> None:
    net = _net("train")
    guard = TorchGuard(net, after_steps=10, on_failure="warn")
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01)
    for step in range(40):
        net.train(step == 0)  # one update in train mode, the rest in eval mode
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(net(torch.randn(8, 3, 8, 8)), torch.zeros(8, dtype=torch.long)).backward()
        optimizer.step()
        guard.step()
    barely = [f for f in guard.findings if f.code == "BN006"]
    assert _codes(barely) == ["BN006 backbone.1", "BN006 backbone.4"]
    assert "num_batches_tracked = 1" in barely[0].message
    # healthy: 10 updates of momentum 0.1 leave 35% of 0/1; not judged before the steps predict convergence
    guard, _ = _torch_train(_net("train"), lambda m, o: TorchGuard(m, o, after_steps=5, on_failure="warn"))
    assert [f for f in guard.findings if f.code == "BN006"] == []


def test_torch_guard_arguments_are_checked() -> None:
    net = _net()
    for bad in ({"after_steps": 0}, {"every": 0}, {"on_failure": "ignore"}, {"frozen": [3]}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            TorchGuard(net, **bad)
    with pytest.raises(TypeError, match=r"torch\.nn\.Module"):
        TorchGuard(object())


def test_the_error_is_not_an_input_error() -> None:
    assert not issubclass(BatchNormStateError, BncheckError)


def test_settings_select_ignore_and_fail_on_apply() -> None:
    ignoring = Settings(ignore=("BN002",))
    guard, raised = _torch_train(_net("eval"), lambda m, o: TorchGuard(m, o, settings=ignoring))
    assert raised is not None and _codes(raised.findings) == ["BN201 backbone.1", "BN201 backbone.4"]
    never = Settings(fail_on=None)
    guard, raised = _torch_train(_net("eval"), lambda m, o: TorchGuard(m, o, settings=never))
    assert raised is None and len(guard.findings) == 2


# --------------------------------------------------------------------------- the monitor itself


def _layer(mean: float, gamma: float = 1.0, name: str = "bn") -> LiveLayer:
    values = {
        "gamma": np.full(4, gamma, "float32"),
        "beta": np.zeros(4, "float32"),
        "moving_mean": np.full(4, mean, "float32"),
        "moving_variance": np.ones(4, "float32"),
    }
    return LiveLayer(name, values)


def test_monitor_tells_each_finding_once() -> None:
    monitor = Monitor(Framework.KERAS, after_steps=2, every=None, on_failure="warn")
    monitor.start([_layer(0.0)])
    told = []
    for _ in range(6):
        monitor.steps += 1
        if monitor.due(monitor.steps):
            told.append(_codes(monitor.judge([_layer(0.0, gamma=1.5)])))
    assert told == [["BN002 bn"], [], []]


# --------------------------------------------------------------------------- Keras 3


def _keras_data() -> tuple[np.ndarray, np.ndarray]:
    x = np.random.RandomState(0).normal(2.0, 3.0, (480, 6)).astype("float32")
    return x, np.zeros(480, "int64")


def _keras_model(frozen: bool = False):
    import keras

    keras.utils.set_random_seed(0)
    frozen_bn = keras.layers.BatchNormalization(name="frozen_bn", trainable=not frozen)
    return keras.Sequential(
        [keras.Input((6,)), keras.layers.Dense(8), keras.layers.BatchNormalization(name="bn"), frozen_bn,
         keras.layers.Dense(2)]
    )  # fmt: skip


def _keras_custom_loop(training: bool | None, **options):
    import keras
    import tensorflow as tf

    from bncheck.keras import BatchNormGuard

    model = _keras_model()
    x, y = _keras_data()
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    optimizer = keras.optimizers.Adam()
    guard = BatchNormGuard(model=model, **options)
    try:
        for i in range(0, len(x), 8):
            with tf.GradientTape() as tape:
                value = loss(y[i : i + 8], model(x[i : i + 8], training=training))
            grads = tape.gradient(value, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
            guard.step()
    except BatchNormStateError as exc:
        return guard, exc
    return guard, None


def test_keras3_custom_loop_without_training_true_raises_bn002() -> None:
    _, raised = _keras_custom_loop(None)
    assert raised is not None and _codes(raised.findings) == ["BN002 bn", "BN002 frozen_bn"]
    assert "training=True" in str(raised) and "inference mode" in str(raised)


def test_keras3_custom_loop_with_training_true_is_quiet() -> None:
    guard, raised = _keras_custom_loop(True)
    assert raised is None and guard.findings == [] and guard.monitor.steps == 60


def test_keras3_fit_is_quiet_and_a_frozen_layer_is_no_alarm() -> None:
    import keras

    from bncheck.keras import BatchNormGuard

    model = _keras_model(frozen=True)
    model.compile(keras.optimizers.Adam(), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    guard = BatchNormGuard(after_steps=20)
    x, y = _keras_data()
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[guard])
    assert guard.monitor.steps == 60
    assert [f for f in guard.findings if f.severity >= 2] == []  # the fresh frozen layer: info at most


def test_keras3_fit_stops_cleanly_with_on_failure_stop() -> None:
    import keras

    from bncheck.keras import BatchNormGuard

    model = _keras_model()
    model.compile(keras.optimizers.Adam(), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.get_layer("bn").trainable = False  # frozen while fresh: fine, info
    x, y = _keras_data()
    x[100:] = np.nan  # a poisoned batch: NaN reaches the statistics
    guard = BatchNormGuard(after_steps=50, every=5, on_failure="stop")
    history = model.fit(x, y, batch_size=8, epochs=3, verbose=0, shuffle=False, callbacks=[guard])
    assert guard.stop_requested and guard.monitor.steps == 15  # stopped after the step that found it
    assert "BN004" in {f.code for f in guard.findings} and len(history.epoch) == 1


def test_keras_guard_without_a_model_says_so() -> None:
    from bncheck.keras import BatchNormGuard

    with pytest.raises(RuntimeError, match="no model"):
        BatchNormGuard().step()


# --------------------------------------------------------------------------- tf_keras and TF1 graphs


def _scenarios(*args: str) -> dict[str, dict]:
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
    run = subprocess.run(
        [sys.executable, "-m", "tests.guard_scenarios", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    lines = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    return {line["name"]: line for line in lines}


def test_tf_keras_fit_is_quiet_and_a_custom_loop_without_training_raises() -> None:
    runs = _scenarios("tf_keras")
    assert runs["fit"]["codes"] == [] and runs["fit"]["steps"] == 60
    loop = runs["custom loop without training=True"]
    assert loop["raised"] == ["BN002 bn"] and loop["steps"] == 20


def test_tf1_graph_rules_on_the_live_graph_agree_with_inspect_of_its_checkpoint(tmp_path: Path) -> None:
    runs = _scenarios("tf1", str(tmp_path))
    expected = {
        "no control dependencies": ["BN102 bn"],
        "control dependencies": [],
        "Saver(trainable_variables)": ["BN104 bn"],
        "tf.keras in a TF1 graph": ["BN102 bn", "BN103 bn"],
        "tf.keras with model.updates": [],
        "tf.keras after set_learning_phase(0)": ["BN101 bn"],
    }
    assert {name: run["codes"] for name, run in runs.items()} == expected
    for name, run in runs.items():
        assert run["inspected"] == run["codes"], name  # bncheck inspect of the checkpoint that graph writes
        errors = [code for code in run["codes"] if not code.startswith("BN103")]  # BN103 is a warning
        assert run["raised"] == (errors or None), name


def test_importing_bncheck_imports_no_framework_and_the_guards_only_their_own() -> None:
    probe = (
        "import sys, importlib\n"
        "for name in sys.argv[1:]:\n    importlib.import_module(name)\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'tensorflow', 'keras', 'tf_keras', 'torch'}))\n"
    )
    for modules, heavy in (
        (["bncheck", "bncheck.guarding", "bncheck.cli"], "[]"),
        (["bncheck.keras"], "[]"),  # the Keras guard speaks the callback protocol: Keras hands it the variables
        (["bncheck.torch"], "['torch']"),
    ):
        out = subprocess.run([sys.executable, "-c", probe, *modules], capture_output=True, text=True, timeout=120)
        assert out.stdout.strip() == heavy, (modules, out.stderr[-2000:])
