"""Benchmark ``bncheck inspect`` against TensorFlow's own tools, whole process by whole process.

    python bench/bench.py                 # write missing inputs, time everything, write bench/RESULTS.md
    python bench/bench.py --runs 7        # more repetitions (median of at least 5 is the rule)
    python bench/bench.py --generate      # only write the inputs (TensorFlow/Keras needed)

Inputs are written with TensorFlow / Keras into ``bench/data/`` (git-ignored) when absent:
a ResNet-152 (``keras.applications``, ``weights=None``, BN variables set to trained-looking
values) as a TF2 checkpoint, ``.keras`` and ``.weights.h5``; TF1 name-based checkpoints with
1k, 10k and 80k BN variables (250 / 2,500 / 20,000 layers, 1 in 100 never updated); and a
checkpoint with 2 GiB of non-BN weights beside four BN layers.

Each repetition runs every tool on every input once, alternating, so load on the machine
hits all of them alike; a first, untimed round warms the page cache. Wall time and peak
RSS (``ru_maxrss`` from ``os.wait4``) are per whole process. The tools:

- ``bncheck inspect PATH`` (table, piped) and ``--format json``; ``--all`` (every layer in the table) for
  the ResNet-152 checkpoint and the 80,000-variable one;
- ``python -m tensorflow.python.tools.inspect_checkpoint --file_name=PREFIX`` (names only);
- a TensorFlow script doing what bncheck does (this file, ``tf-equivalent PATH``):
  ``tf.train.load_checkpoint``, read every BN variable, min/max/mean of each moving
  statistic, checks for exactly 0 / 1; for Keras files, Keras loads the model
  (``.weights.h5``: into a freshly built ResNet-152) and the same summaries follow.

Two floors: ``python -c pass`` (interpreter start) and a process that only imports bncheck's run-time
dependencies (``DEPENDENCIES``).
"""

from __future__ import annotations

import argparse
import compileall
import datetime
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
RESULTS = HERE / "RESULTS.md"
ROLES = ("gamma", "beta", "moving_mean", "moving_variance")
CURVE = {"bn_1k": 250, "bn_10k": 2_500, "bn_80k": 20_000}  # checkpoint -> BN layers (4 variables each)
BIG_ROWS, BIG_COLS, BIG_COUNT = 16_384, 8_192, 4  # 4 x 512 MiB float32 = 2 GiB of non-BN weights
DEPENDENCIES = "import click, rich, numpy, h5py, google.protobuf"
IN_PROCESS = "bncheck inspect --timeout 0 (in process, unsupervised)"
SUPERVISION = 0.05  # seconds the supervised reading (a worker process under a deadline) may add, at most
ALL_ROWS = ("ResNet-152 TF2 checkpoint", "TF1 80,000 BN variables")  # inputs also timed with --all


# --------------------------------------------------------------------------- inputs (TensorFlow)


@dataclass(frozen=True)
class Input:
    label: str
    path: Path  # what bncheck is given
    kind: str  # "ckpt" | "keras" | "weights" | "savedmodel"

    @property
    def exists(self) -> bool:
        if self.kind == "ckpt":
            return Path(f"{self.path}.index").is_file()
        if self.kind == "savedmodel":
            return (self.path / "saved_model.pb").is_file()
        return self.path.is_file()


INPUTS = (
    Input("ResNet-152 TF2 checkpoint", DATA / "resnet152" / "ckpt", "ckpt"),
    Input("ResNet-152 .keras", DATA / "resnet152.keras", "keras"),
    Input("ResNet-152 .weights.h5", DATA / "resnet152.weights.h5", "weights"),
    *(Input(f"TF1 {n * 4:,} BN variables", DATA / name / "model.ckpt", "ckpt") for name, n in CURVE.items()),
    Input("2 GiB data file, 4 BN layers", DATA / "big" / "model.ckpt", "ckpt"),
    Input("ResNet-152 SavedModel (model.export)", DATA / "resnet152_export", "savedmodel"),
    Input("ResNet-152 PyTorch state dict (.pt)", DATA / "resnet152_torch.pt", "torch"),
    Input("ResNet-152 PyTorch state dict (.safetensors)", DATA / "resnet152_torch.safetensors", "torch"),
)
TORCH_BLOCKS = (3, 8, 36, 3)  # ResNet-152's bottleneck blocks per stage, as torchvision builds it


def _trained_like(rng, channels: int) -> dict:  # type: ignore[no-untyped-def]
    """Values of a BN layer that look trained (none at the initial 1/0/0/1)."""
    return {
        "gamma": (1 + 0.1 * rng.standard_normal(channels)).astype("float32"),
        "beta": (0.1 * rng.standard_normal(channels)).astype("float32"),
        "moving_mean": (0.2 * rng.standard_normal(channels)).astype("float32"),
        "moving_variance": rng.uniform(0.2, 2.0, channels).astype("float32"),
    }


def generate() -> None:
    """Write every missing input (imports TensorFlow and Keras)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(0)
    generate_torch(rng)
    resnet = [spec for spec in INPUTS if spec.label.startswith("ResNet-152") and spec.kind != "torch"]
    if not all(spec.exists for spec in resnet):
        import keras

        model = keras.applications.ResNet152(weights=None)
        for layer in model.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                for role, value in _trained_like(rng, layer.gamma.shape[0]).items():
                    getattr(layer, role).assign(value)
        (DATA / "resnet152").mkdir(parents=True, exist_ok=True)
        checkpoint, keras_file, weights, export = (spec.path for spec in resnet)
        tf.train.Checkpoint(model=model).write(str(checkpoint))
        model.save(keras_file)
        model.save_weights(weights)
        model.export(str(export))  # serving signatures: every BN in inference mode
        print("wrote ResNet-152 inputs", flush=True)

    def save(prefix: Path, tensors: dict) -> None:  # type: ignore[type-arg]
        prefix.parent.mkdir(parents=True, exist_ok=True)
        names = list(tensors)
        tf.raw_ops.SaveV2(
            prefix=str(prefix),
            tensor_names=names,
            shape_and_slices=[""] * len(names),
            tensors=[tensors[n] for n in names],
        )

    for (name, layers), spec in zip(CURVE.items(), INPUTS[3:6], strict=True):
        if spec.exists:
            continue
        tensors: dict = {"global_step": np.int64(10_000)}
        for i in range(layers):
            values = _trained_like(rng, (64, 128, 256, 512)[i % 4])
            if i % 100 == 7:  # the update ops never ran in 1 layer of 100
                values["moving_mean"][:] = 0
                values["moving_variance"][:] = 1
            scope = f"resnet/stage{i // 1000}/unit_{i % 1000}/conv{i % 3}/BatchNorm"
            tensors.update({f"{scope}/{role}": value for role, value in values.items()})
        save(spec.path, tensors)
        print(f"wrote {name}: {len(tensors)} tensors", flush=True)

    big = INPUTS[6]
    if not big.exists:
        tensors = {"global_step": np.int64(10_000)}
        for i in range(BIG_COUNT):
            tensors[f"dense_{i}/kernel"] = tf.fill([BIG_ROWS, BIG_COLS], 0.01 * (i + 1))
            for role, value in _trained_like(rng, 256).items():
                tensors[f"dense_{i}/batch_normalization/{role}"] = value
        save(big.path, tensors)
        del tensors
        print("wrote the 2 GiB checkpoint", flush=True)


def generate_torch(rng) -> None:  # type: ignore[no-untyped-def]
    """torchvision's ResNet-152 state dict (its keys and shapes, built with torch.nn), trained-looking BN."""
    pt, st = (spec.path for spec in INPUTS if spec.kind == "torch")
    if pt.is_file() and st.is_file():
        return
    import torch
    from safetensors.torch import save_file

    state: dict = {}  # type: ignore[type-arg]

    def conv(name: str, out: int, inp: int, k: int) -> None:
        state[f"{name}.weight"] = torch.nn.Conv2d(inp, out, k, bias=False).weight.detach()

    def bn(name: str, channels: int) -> None:
        for role, value in _trained_like(rng, channels).items():
            key = {"gamma": "weight", "beta": "bias", "moving_mean": "running_mean", "moving_variance": "running_var"}
            state[f"{name}.{key[role]}"] = torch.from_numpy(value)
        state[f"{name}.num_batches_tracked"] = torch.tensor(450_000)

    conv("conv1", 64, 3, 7)
    bn("bn1", 64)
    inplanes = 64
    for stage, (blocks, planes) in enumerate(zip(TORCH_BLOCKS, (64, 128, 256, 512), strict=True), start=1):
        for block in range(blocks):
            prefix = f"layer{stage}.{block}"
            conv(f"{prefix}.conv1", planes, inplanes, 1)
            bn(f"{prefix}.bn1", planes)
            conv(f"{prefix}.conv2", planes, planes, 3)
            bn(f"{prefix}.bn2", planes)
            conv(f"{prefix}.conv3", planes * 4, planes, 1)
            bn(f"{prefix}.bn3", planes * 4)
            if block == 0:
                conv(f"{prefix}.downsample.0", planes * 4, inplanes, 1)
                bn(f"{prefix}.downsample.1", planes * 4)
            inplanes = planes * 4
    state["fc.weight"] = torch.nn.Linear(2048, 1000).weight.detach()
    state["fc.bias"] = torch.zeros(1000)
    DATA.mkdir(parents=True, exist_ok=True)
    torch.save(state, pt)
    save_file(state, st)
    print(f"wrote the ResNet-152 PyTorch inputs: {len(state)} tensors", flush=True)


def torch_equivalent(path: str) -> None:
    """torch.load (weights_only) or safetensors, every BN tensor, bncheck's summaries."""
    import torch

    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        state = load_file(path)
    else:
        state = torch.load(path, weights_only=True, map_location="cpu")
    names = {"weight": "gamma", "bias": "beta", "running_mean": "moving_mean", "running_var": "moving_variance"}
    layers: dict[str, dict] = {}  # type: ignore[type-arg]
    for key, value in state.items():
        prefix, _, leaf = key.rpartition(".")
        if leaf in names:
            layers.setdefault(prefix, {})[names[leaf]] = value.numpy()
    bn = {name: values for name, values in layers.items() if "moving_mean" in values}
    results = [_summaries(name, values) for name, values in bn.items()]
    print(f"{len(results)} BN layers, {sum(r['never_updated'] for r in results)} never updated")


# --------------------------------------------------------------------------- the TensorFlow equivalent


def _summaries(name: str, values: dict) -> dict:  # type: ignore[type-arg]
    """What bncheck computes per layer: min/max/mean of each moving statistic, exactly 0 / 1."""
    import numpy as np

    out: dict = {"layer": name}
    for role, initial in (("moving_mean", 0.0), ("moving_variance", 1.0)):
        if role in values:
            flat = np.asarray(values[role], dtype=np.float64).ravel()
            finite = flat[np.isfinite(flat)]
            out[role] = (finite.min(), finite.max(), finite.mean()) if finite.size else None
            out[f"{role}_initial"] = bool(np.all(flat == initial))
    out["never_updated"] = out.get("moving_mean_initial", False) and out.get("moving_variance_initial", False)
    return out


def tf_equivalent(path: str, kind: str) -> None:
    """Load with TensorFlow / Keras, read every BN variable, compute bncheck's summaries."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    layers: dict[str, dict] = {}  # type: ignore[type-arg]
    if kind == "ckpt":
        reader = tf.train.load_checkpoint(path)
        for key in reader.get_variable_to_shape_map():
            parts = key.removesuffix("/.ATTRIBUTES/VARIABLE_VALUE").split("/")
            if parts[-1] in ROLES and "OPTIMIZER_SLOT" not in key:
                layers.setdefault("/".join(parts[:-1]), {})[parts[-1]] = reader.get_tensor(key)
    elif kind == "savedmodel":  # what a serving check does with TensorFlow: load, read the BN variables
        for variable in tf.saved_model.load(path).variables:
            scope, _, role = variable.name.removesuffix(":0").rpartition("/")
            if role in ROLES:
                layers.setdefault(scope, {})[role] = variable.numpy()
    else:
        import keras

        if kind == "keras":
            model = keras.saving.load_model(path, compile=False)
        else:
            model = keras.applications.ResNet152(weights=None)
            model.load_weights(path)
        for layer in model.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layers[layer.name] = {role: getattr(layer, role).numpy() for role in ROLES}
    results = [_summaries(name, values) for name, values in layers.items()]
    print(f"{len(results)} BN layers, {sum(r['never_updated'] for r in results)} never updated")


# --------------------------------------------------------------------------- timing


@dataclass
class Tool:
    label: str
    command: list[str]
    samples: list[tuple[float, int]] = field(default_factory=list)  # (wall s, peak RSS bytes)

    @property
    def wall(self) -> float:
        return statistics.median(s[0] for s in self.samples)

    @property
    def rss(self) -> float:
        return statistics.median(s[1] for s in self.samples)


def run_once(command: list[str], env: dict[str, str]) -> tuple[float, int]:
    """Wall time and peak RSS of one whole process; exit 0 or 1 (bncheck findings) expected."""
    with tempfile.TemporaryFile() as errors:
        start = time.perf_counter()
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=errors, env=env)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
        process.returncode = code = os.waitstatus_to_exitcode(status)
        if code not in (0, 1):
            errors.seek(0)
            raise SystemExit(f"{' '.join(command)} exited {code}:\n{errors.read().decode(errors='replace')[-2000:]}")
    return wall, usage.ru_maxrss * 1024  # ru_maxrss is in KiB on Linux


def tools_for(spec: Input) -> list[Tool]:
    bncheck = str(Path(sys.executable).with_name("bncheck"))
    path = str(spec.path)
    tools = [
        Tool("bncheck inspect", [bncheck, "inspect", path]),
        Tool("bncheck inspect --format json", [bncheck, "inspect", path, "--format", "json"]),
        Tool(IN_PROCESS, [bncheck, "inspect", path, "--timeout", "0"]),
    ]
    if spec.label in ALL_ROWS:
        tools.append(Tool("bncheck inspect --all (table)", [bncheck, "inspect", path, "--all"]))
    if spec.kind == "ckpt":
        module = "tensorflow.python.tools.inspect_checkpoint"
        tools.append(Tool("inspect_checkpoint (names)", [sys.executable, "-m", module, f"--file_name={path}"]))
        tools.append(Tool("TF script (same summaries)", [sys.executable, __file__, "tf-equivalent", path, "ckpt"]))
    elif spec.kind == "torch":
        tools.append(Tool("torch.load (same summaries)", [sys.executable, __file__, "torch-equivalent", path]))
    elif spec.kind == "savedmodel":
        command = [sys.executable, __file__, "tf-equivalent", path, spec.kind]
        tools.append(Tool("tf.saved_model.load (same summaries)", command))
    else:
        tools.append(Tool("Keras load (same summaries)", [sys.executable, __file__, "tf-equivalent", path, spec.kind]))
    return tools


def machine(packages: tuple[str, ...] = ("tensorflow", "keras", "numpy", "rich", "protobuf")) -> list[str]:
    """The machine, the interpreter and the versions of ``packages``, as lines of RESULTS.md."""
    cpu = "unknown"
    with open("/proc/cpuinfo", encoding="utf-8") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo", encoding="utf-8") as f:
        memory = int(f.readline().split()[1]) / 2**20
    versions = ", ".join(f"{p} {metadata.version(p)}" for p in packages)
    lines = [
        f"- CPU: {cpu}, {os.cpu_count()} cores; memory {memory:.1f} GiB",
        f"- Python {platform.python_version()} ({platform.platform()}); {versions}",
        f"- date: {datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}",
    ]
    if "OPENBLAS_CORETYPE" in os.environ:
        lines.append(f"- environment: OPENBLAS_CORETYPE={os.environ['OPENBLAS_CORETYPE']} (a quirk of this machine)")
    return lines


def describe(spec: Input) -> str:
    """A row of the inputs table: files on disk, tensors, BN bytes (what bncheck reads and holds)."""
    if spec.kind == "torch":
        sys.path.insert(0, str(HERE.parent))
        from bncheck.readers import open_model

        model = open_model(str(spec.path))
        bn = sum(v.size * 4 for v in model.variables)
        model.close()
        return f"| {spec.label} | {spec.path.stat().st_size / 2**20:,.0f} | - | {bn / 2**20:.1f} |"
    if spec.kind == "savedmodel":
        size = sum(p.stat().st_size for p in spec.path.rglob("*") if p.is_file())
        return f"| {spec.label} | {size / 2**20:,.0f} | - | - |"
    if spec.kind != "ckpt":
        return f"| {spec.label} | {spec.path.stat().st_size / 2**20:,.0f} | - | - |"
    sys.path.insert(0, str(HERE.parent))
    from bncheck.readers.bundle import Bundle

    bundle = Bundle(str(spec.path))
    files = sum(p.stat().st_size for p in spec.path.parent.glob(spec.path.name + ".*"))
    bn = 0
    for name in bundle.names():
        if name.removesuffix("/.ATTRIBUTES/VARIABLE_VALUE").rsplit("/", 1)[-1] in ROLES:
            bn += bundle._entry(name).size
    return f"| {spec.label} | {files / 2**20:,.0f} | {len(bundle.names()):,} | {bn / 2**20:.1f} |"


def _mb(value: float) -> str:
    return f"{value / 2**20:.0f}"


def targets(help_tool: Tool, deps_tool: Tool, table: list[tuple[Input, list[Tool]]]) -> list[str]:
    """Each target (issues 7, 13, 15, 16 and 18) with what was measured, and whether it is met."""
    by_label = {spec.label: {tool.label: tool for tool in tools} for spec, tools in table}
    resnet = by_label["ResNet-152 TF2 checkpoint"]
    ratio = resnet["TF script (same summaries)"].wall / resnet["bncheck inspect"].wall
    ours = [tool for _, tools in table for tool in tools if tool.label.startswith("bncheck")]
    biggest = max(ours, key=lambda tool: tool.rss)
    big = by_label["TF1 80,000 BN variables"]
    slowest_80k = max(big["bncheck inspect"], big["bncheck inspect --format json"], key=lambda tool: tool.wall)
    all_80k, all_resnet = big["bncheck inspect --all (table)"], resnet["bncheck inspect --all (table)"]
    resnet_wall = resnet["bncheck inspect"].wall
    export = by_label["ResNet-152 SavedModel (model.export)"]
    export_slowest = max(export["bncheck inspect"], export["bncheck inspect --format json"], key=lambda t: t.wall)
    keras_walls = {
        label: max(tools["bncheck inspect"].wall, tools["bncheck inspect --format json"].wall)
        for label, tools in by_label.items()
        if label.startswith("ResNet-152 .")
    }
    overhead = max(
        ((tools["bncheck inspect"].wall - tools[IN_PROCESS].wall, label) for label, tools in by_label.items()),
    )
    torch_rows = []
    for label, tools in by_label.items():
        if label.startswith("ResNet-152 PyTorch"):
            slowest = max(tools["bncheck inspect"], tools["bncheck inspect --format json"], key=lambda t: t.wall)
            speedup = tools["torch.load (same summaries)"].wall / tools["bncheck inspect"].wall
            torch_rows.append(
                (
                    f"{label}: at most 0.3 s and 100 MB, at least 10x faster than torch.load",
                    f"{slowest.wall:.3f} s, {_mb(slowest.rss)} MB, {speedup:.1f}x",
                    slowest.wall <= 0.3 and slowest.rss < 100 * 2**20 and speedup >= 10,
                )
            )
    rows = [
        ("ResNet-152 checkpoint: bncheck at least 10x faster than the TF script", f"{ratio:.1f}x", ratio >= 10),
        *torch_rows,
        ("ResNet-152 checkpoint: at most 0.35 s", f"{resnet_wall:.3f} s", resnet_wall <= 0.35),
        *(
            (f"{label}: at most 0.5 s (table and json)", f"{wall:.3f} s", wall <= 0.5)
            for label, wall in keras_walls.items()
        ),
        (
            "ResNet-152 SavedModel (signatures walked): at most 0.6 s and 100 MB (table and json)",
            f"{export_slowest.wall:.3f} s, {_mb(export_slowest.rss)} MB",
            export_slowest.wall <= 0.6 and export_slowest.rss < 100 * 2**20,
        ),
        ("peak RSS under 100 MB, every input (table and json)", f"{_mb(biggest.rss)} MB", biggest.rss < 100 * 2**20),
        ("80,000 variables: at most 2 s (table and json)", f"{slowest_80k.wall:.3f} s", slowest_80k.wall <= 2),
        ("80,000 variables (20,000 layers), `--all` table: at most 2 s", f"{all_80k.wall:.3f} s", all_80k.wall <= 2),
        (
            "ResNet-152 `--all` table: within 2x importing the dependencies",
            f"{all_resnet.wall / deps_tool.wall:.2f}x ({all_resnet.wall:.3f} s / {deps_tool.wall:.3f} s)",
            all_resnet.wall <= 2 * deps_tool.wall,
        ),
        ("`bncheck --help`: at most 0.25 s", f"{help_tool.wall:.3f} s", help_tool.wall <= 0.25),
        (
            f"supervised reading (issue 18): at most {SUPERVISION * 1000:.0f} ms more than `--timeout 0`, every input",
            f"{overhead[0] * 1000:+.0f} ms ({overhead[1]})",
            overhead[0] <= SUPERVISION,
        ),
    ]
    lines = ["| target | measured | met |", "|---|---:|---|"]
    return lines + [f"| {what} | {measured} | {'yes' if ok else '**no**'} |" for what, measured, ok in rows]


def only(text: str, runs: int) -> None:
    """Time the inputs whose label holds ``text`` (their own inputs written if missing); print, write nothing."""
    specs = [spec for spec in INPUTS if text in spec.label]
    if not all(spec.exists for spec in specs):
        kinds = {spec.kind for spec in specs}
        subprocess.run([sys.executable, __file__, "generate-torch" if kinds == {"torch"} else "generate"], check=True)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", NO_COLOR="1")
    compileall.compile_dir(str(HERE.parent / "bncheck"), quiet=1)
    table = [(spec, tools_for(spec)) for spec in specs]
    for repetition in range(runs + 1):
        for _, tools in table:
            for tool in tools:
                sample = run_once(tool.command, env)
                if repetition:
                    tool.samples.append(sample)
    for spec, tools in table:
        for tool in tools:
            ratio = f"{tool.wall / tools[0].wall:.1f}x" if not tool.label.startswith("bncheck") else ""
            print(f"| {spec.label} | {tool.label} | {tool.wall:.3f} | {_mb(tool.rss)} | {ratio} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=5, help="timed repetitions (median reported; default 5)")
    parser.add_argument("--generate", action="store_true", help="only write the missing inputs")
    parser.add_argument("--no-write", action="store_true", help=f"do not write {RESULTS.name}")
    parser.add_argument("--only", metavar="TEXT", help="time only the inputs whose label holds TEXT; write nothing")
    args = parser.parse_args()
    if args.only:
        return only(args.only, args.runs)
    if not all(i.exists for i in INPUTS):
        subprocess.run([sys.executable, __file__, "generate"], check=True)
    if args.generate:
        return
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", NO_COLOR="1")
    # bncheck's bytecode, as `pip install` leaves it: an editable install under PYTHONDONTWRITEBYTECODE
    # would otherwise compile every module in every timed run
    compileall.compile_dir(str(HERE.parent / "bncheck"), quiet=1)
    help_tool = Tool("bncheck --help", [str(Path(sys.executable).with_name("bncheck")), "--help"])
    python_tool = Tool("python -c pass", [sys.executable, "-c", "pass"])
    deps_tool = Tool(f"python -c '{DEPENDENCIES}'", [sys.executable, "-c", DEPENDENCIES])
    table = [(spec, tools_for(spec)) for spec in INPUTS]
    every = [help_tool, python_tool, deps_tool, *(t for _, tools in table for t in tools)]
    load_before = os.getloadavg()
    for repetition in range(args.runs + 1):  # round 0 warms the page cache and is not counted
        for tool in every:
            sample = run_once(tool.command, env)
            if repetition:
                tool.samples.append(sample)
        print(f"round {repetition}/{args.runs} done", file=sys.stderr, flush=True)
    load_after = os.getloadavg()

    out = [
        "| input | tool | median wall (s) | peak RSS (MB) | TF / bncheck wall |",
        "|---|---|---:|---:|---:|",
        f"| - | {help_tool.label} | {help_tool.wall:.3f} | {_mb(help_tool.rss)} | |",
        f"| - | {python_tool.label} (interpreter start) | {python_tool.wall:.3f} | {_mb(python_tool.rss)} | |",
        f"| - | {deps_tool.label} (dependencies only) | {deps_tool.wall:.3f} | {_mb(deps_tool.rss)} | |",
    ]
    for spec, tools in table:
        ours = tools[0].wall
        for tool in tools:
            ratio = f"{tool.wall / ours:.1f}x" if not tool.label.startswith("bncheck") else ""
            out.append(f"| {spec.label} | {tool.label} | {tool.wall:.3f} | {_mb(tool.rss)} | {ratio} |")
    curve = [tools[0] for spec, tools in table if spec.label.startswith("TF1")]
    out += ["", "Cost against the number of BN variables (`bncheck inspect`, table; 1 in 100 layers flagged):", ""]
    out += [
        "| BN variables | median wall (s) | peak RSS (MB) | added per 1k variables since the row above (ms) |",
        "|---:|---:|---:|---:|",
    ]
    previous = None
    for layers, tool in zip(CURVE.values(), curve, strict=True):
        count = layers * 4
        slope = f"{1000 * (tool.wall - previous[1]) / ((count - previous[0]) / 1000):.1f}" if previous else ""
        out.append(f"| {count:,} | {tool.wall:.3f} | {_mb(tool.rss)} | {slope} |")
        previous = (count, tool.wall)
    heading = "Targets (issues 7, 13, 15, 16 and 18), from the medians above:"
    out += ["", heading, "", *targets(help_tool, deps_tool, table)]
    out += ["", "Inputs:", "", "| input | files (MiB) | tensors | BN values (MiB) |", "|---|---:|---:|---:|"]
    out += [describe(spec) for spec in INPUTS]
    report = "\n".join(out)
    print(report)
    if args.no_write:
        return
    command = f"python bench/bench.py --runs {args.runs}"
    RESULTS.write_text(
        "# Benchmark results\n\n"
        f"Reproduce: `{command}` (from the repository root, in the venv with the `test` extras).\n"
        f"Medians of {args.runs} whole-process runs per tool, tools alternating within each repetition, after one "
        "untimed warm-up round (warm page cache). Peak RSS is `ru_maxrss` of the process. Output goes to a pipe "
        "(`/dev/null`); `NO_COLOR=1`, `TF_CPP_MIN_LOG_LEVEL=2`; bncheck's modules byte-compiled first, as "
        "`pip install` leaves them.\n\n"
        + "\n".join(machine())
        + f"\n- load average (1 min) before / after: {load_before[0]:.2f} / {load_after[0]:.2f}\n\n"
        + report
        + "\n",
        encoding="utf-8",
    )
    print(f"wrote {RESULTS}", file=sys.stderr)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "generate":
        generate()
    elif len(sys.argv) > 1 and sys.argv[1] == "generate-torch":
        import numpy as np

        generate_torch(np.random.default_rng(0))
    elif len(sys.argv) > 1 and sys.argv[1] == "torch-equivalent":
        torch_equivalent(sys.argv[2])
    elif len(sys.argv) > 1 and sys.argv[1] == "tf-equivalent":
        tf_equivalent(sys.argv[2], sys.argv[3])
    else:
        main()
