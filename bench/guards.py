"""The cost of the training-time guards: a ResNet-50 trained on CPU with and without the guard, in one run.

    python bench/guards.py             # writes bench/RESULTS-guards.md
    python bench/guards.py --steps 100

For PyTorch (a ResNet-50 built here: torchvision is not a dependency) and Keras 3 (``keras.applications.ResNet50``,
``weights=None``), batches of 8 images of 112x112: the median wall time of a training step without the guard,
the time spent inside the guard (``guard.step()``, timed around each call, default settings: ``after_steps=50``,
``every=10``) per step on average and at its most expensive step (the first judgement of every rule), and the
average as a share of the step time. Steps alternate in blocks (10 without, 10 with) so that the machine's
drift affects both alike.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from bench import machine  # noqa: E402  (bench/bench.py: this directory is on sys.path)

RESULTS = HERE / "RESULTS-guards.md"
BATCH, SIZE, CLASSES = 8, 112, 10


def measure(train_step: Callable[[], None], guard_step: Callable[[], object], steps: int) -> dict[str, float]:
    """Median step time without the guard, and the guard's time per step (mean, max) over ``steps`` guarded
    steps, in blocks of 10 alternating with unguarded ones."""
    for _ in range(3):
        train_step()  # warm-up (the first steps build kernels and caches)
    plain, guarded, inside = [], [], []
    while len(guarded) < steps:
        for _ in range(10):
            start = time.perf_counter()
            train_step()
            plain.append(time.perf_counter() - start)
        for _ in range(10):
            start = time.perf_counter()
            train_step()
            middle = time.perf_counter()
            guard_step()
            end = time.perf_counter()
            guarded.append(end - start)
            inside.append(end - middle)
    step = statistics.median(plain)
    mean = sum(inside) / len(inside)
    return {
        "step": step,
        "guarded": statistics.median(guarded),
        "guard mean": mean,
        "guard max": max(inside),
        "share": mean / step,
    }


def bottleneck(torch, channels: int, width: int, stride: int):  # type: ignore[no-untyped-def]
    nn = torch.nn

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            out = width * 4
            self.conv1, self.bn1 = nn.Conv2d(channels, width, 1, bias=False), nn.BatchNorm2d(width)
            self.conv2, self.bn2 = nn.Conv2d(width, width, 3, stride, 1, bias=False), nn.BatchNorm2d(width)
            self.conv3, self.bn3 = nn.Conv2d(width, out, 1, bias=False), nn.BatchNorm2d(out)
            self.downsample = (
                nn.Sequential(nn.Conv2d(channels, out, 1, stride, bias=False), nn.BatchNorm2d(out))
                if stride != 1 or channels != out
                else None
            )

        def forward(self, x):  # type: ignore[no-untyped-def]
            y = torch.relu(self.bn1(self.conv1(x)))
            y = torch.relu(self.bn2(self.conv2(y)))
            y = self.bn3(self.conv3(y))
            return torch.relu(y + (self.downsample(x) if self.downsample is not None else x))

    return Block()


def torch_resnet50(torch):  # type: ignore[no-untyped-def]
    """ResNet-50's layout (3, 4, 6, 3 bottlenecks; 53 BN modules, 25.5M parameters at 1000 classes)."""
    nn = torch.nn
    layers: list = [nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(3, 2, 1)]
    channels = 64
    for width, blocks, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
        for i in range(blocks):
            layers.append(bottleneck(torch, channels, width, stride if i == 0 else 1))
            channels = width * 4
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, CLASSES)]
    return nn.Sequential(*layers)


def bench_torch(steps: int) -> tuple[str, dict[str, float]]:
    import torch

    from bncheck.torch import BatchNormGuard

    torch.manual_seed(0)
    model = torch_resnet50(torch).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x, y = torch.randn(BATCH, 3, SIZE, SIZE), torch.randint(0, CLASSES, (BATCH,))
    guard = BatchNormGuard(model)  # defaults; called by hand so that its own time can be taken

    def train_step() -> None:
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()

    layers = sum(1 for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    return f"PyTorch {torch.__version__}, ResNet-50 ({layers} BN modules)", measure(train_step, guard.step, steps)


def bench_keras(steps: int) -> tuple[str, dict[str, float]]:
    import keras
    import numpy as np
    import tensorflow as tf

    from bncheck.keras import BatchNormGuard

    keras.utils.set_random_seed(0)
    model = keras.applications.ResNet50(weights=None, input_shape=(SIZE, SIZE, 3), classes=CLASSES)
    optimizer = keras.optimizers.SGD(0.01, momentum=0.9)
    loss = keras.losses.SparseCategoricalCrossentropy()
    x = np.random.RandomState(0).normal(size=(BATCH, SIZE, SIZE, 3)).astype("float32")
    y = np.random.RandomState(1).randint(0, CLASSES, BATCH)

    @tf.function
    def train_step() -> None:
        with tf.GradientTape() as tape:
            value = loss(y, model(x, training=True))
        optimizer.apply_gradients(
            zip(tape.gradient(value, model.trainable_variables), model.trainable_variables, strict=True)
        )

    guard = BatchNormGuard(model=model)
    layers = sum(1 for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization))
    label = f"Keras {keras.__version__} ({keras.backend.backend()}), ResNet50 ({layers} BN layers)"
    return label, measure(train_step, guard.step, steps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--steps", type=int, default=60, help="guarded steps per framework (default 60)")
    parser.add_argument("--no-write", action="store_true", help=f"do not write {RESULTS.name}")
    args = parser.parse_args()
    rows = []
    for run in (bench_torch, bench_keras):
        label, numbers = run(args.steps)
        rows.append(
            f"| {label} | {numbers['step']:.3f} | {numbers['guarded']:.3f} | {numbers['guard mean'] * 1e3:.2f} | "
            f"{numbers['guard max'] * 1e3:.1f} | {numbers['share']:.2%} |"
        )
        print(rows[-1], flush=True)
    text = "\n".join(
        [
            "# Benchmark: the training-time guards",
            "",
            f"Reproduce: `python bench/guards.py --steps {args.steps}`. Batches of {BATCH} images of {SIZE}x{SIZE}, "
            f"{CLASSES} classes, CPU; {args.steps} guarded steps per framework in blocks of 10 alternating with "
            "as many unguarded ones, after 3 warm-up steps. The guard runs with its defaults (after_steps=50, "
            "every=10): the health rules every 10 steps, every rule and the window's diff at step 50.",
            "",
            *machine(("torch", "tensorflow", "keras", "numpy")),
            "",
            "| model | step without guard, median (s) | step with guard, median (s) | guard per step, mean (ms) "
            "| guard, slowest step (ms) | guard mean / step |",
            "|---|---:|---:|---:|---:|---:|",
            *rows,
            "",
            "Target (issue 19): at most 1% of the step time with default settings.",
            "",
        ]
    )
    if not args.no_write:
        RESULTS.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
