"""PyTorch and safetensors files: bncheck's readers against torch's own loader, the findings on every fixture
(fixtures/make_torch_fixtures.py wrote them with torch), what the reader refuses, and that nothing runs."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import struct
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import bncheck
from bncheck.analysis import read_layers
from bncheck.errors import BncheckError, FormatError, UnsafeFileError
from bncheck.readers import open_model
from bncheck.readers.pickle_globals import runs_code

torch = pytest.importorskip("torch")  # in the test extra: this runs in CI
safetensors_torch = pytest.importorskip("safetensors.torch")

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
TORCH = FIXTURES / "torch"
ROLES = {"gamma": "weight", "beta": "bias", "moving_mean": "running_mean", "moving_variance": "running_var"}
sys.path.insert(0, str(FIXTURES))  # torch_models, for the oracle's torch.load of pickled modules


def torch_state(path: Path) -> dict[str, object]:
    """The state dict torch itself reads from a fixture: weights_only where the file allows it."""
    if path.suffix == ".safetensors":
        return dict(safetensors_torch.load_file(path))
    if path.name.endswith(".index.json"):
        state: dict[str, object] = {}
        for shard in sorted(set(json.loads(path.read_text())["weight_map"].values())):
            state.update(torch_state(path.parent / shard))
        return state
    try:
        loaded = torch.load(path, weights_only=True)
    except pickle.UnpicklingError:  # a pickled module or a class of the script: our own fixtures, trusted
        loaded = torch.load(path, weights_only=False)
    if isinstance(loaded, torch.nn.Module):
        return loaded.state_dict()
    if isinstance(loaded, dict):
        for key in ("state_dict", "model_state_dict"):
            if key in loaded:
                return {k.removeprefix("model.").removeprefix("module."): v for k, v in loaded[key].items()}
    return dict(loaded)


ORACLE_FIXTURES = [
    "healthy.pt",
    "healthy_legacy.pt",
    "healthy.safetensors",
    "eval_mode.pt",
    "momentum_zero.pt",
    "barely.pt",
    "partly_eval.pt",
    "broken_values.pt",
    "lightning.ckpt",
    "ddp_checkpoint.pth",
    "full_module.pt",
    "frozenbn.pt",
    "untracked.pt",
    "dtypes_half.pt",
    "dtypes_bf16.safetensors",
    "dtypes_double_legacy.pt",
    "views.pt",
    "imagenet/checkpoint.pth.tar",
    "tied.pt",
    "sharded/model.safetensors.index.json",
    "sharded_bin/pytorch_model.bin.index.json",
]


@pytest.mark.parametrize("name", ORACLE_FIXTURES)
def test_reader_matches_torch_value_for_value(name: str) -> None:
    path = TORCH / name
    expected = torch_state(path)
    model = open_model(str(path))
    try:
        report = read_layers(model)
    finally:
        model.close()
    assert not report.errors
    bn_prefixes = {key.rpartition(".")[0] for key in expected if key.endswith(".running_mean")}
    assert {layer.name for layer in report.layers} == bn_prefixes
    for layer in report.layers:
        for role, value in layer.values.items():
            want = expected[f"{layer.name}.{ROLES[role]}"]
            want = want.float() if want.dtype == torch.bfloat16 else want
            assert value.shape == tuple(want.shape), (layer.name, role)
            assert np.array_equal(value, want.numpy(), equal_nan=True), (layer.name, role)
            assert value.dtype == want.numpy().dtype, (layer.name, role)
        counter = expected.get(f"{layer.name}.num_batches_tracked")
        assert layer.hints.batches_tracked == (None if counter is None else int(counter))


# fixture -> {layer: codes} of `bncheck inspect` (every BN layer of the file listed), and the step
FINDINGS = {
    "healthy.pt": ({"backbone.bn1": [], "backbone.bn2": [], "bn3": []}, None),
    "healthy_legacy.pt": ({"backbone.bn1": [], "backbone.bn2": [], "bn3": []}, None),
    "healthy.safetensors": ({"backbone.bn1": [], "backbone.bn2": [], "bn3": []}, None),
    "eval_mode.pt": ({"backbone.bn1": ["BN002"], "backbone.bn2": ["BN002"], "bn3": ["BN002"]}, None),
    "full_module.pt": ({"backbone.bn1": ["BN002"], "backbone.bn2": ["BN002"], "bn3": ["BN002"]}, None),
    "momentum_zero.pt": ({"backbone.bn1": ["BN002"], "backbone.bn2": ["BN002"], "bn3": ["BN002"]}, None),
    "barely.pt": ({"backbone.bn1": ["BN006"], "backbone.bn2": ["BN006"], "bn3": ["BN006"]}, None),
    "partly_eval.pt": ({"backbone.bn1": [], "backbone.bn2": ["BN002"], "bn3": []}, None),
    "broken_values.pt": ({"backbone.bn1": ["BN004"], "backbone.bn2": [], "bn3": ["BN005"]}, None),
    "lightning.ckpt": ({"backbone.bn1": [], "backbone.bn2": [], "bn3": []}, (30, "global_step")),
    "ddp_checkpoint.pth": ({"backbone.bn1": [], "backbone.bn2": [], "bn3": []}, (3, "epoch")),
    "frozenbn.pt": ({"backbone.bn1": [], "backbone.bn2": [], "bn3": []}, None),
    "groupnorm.pt": ({}, None),
    "untracked.pt": ({"bn3": ["BN006"]}, None),
    "parameters_only.pt": ({"backbone.bn1": ["BN001"], "backbone.bn2": ["BN001"], "bn3": ["BN001"]}, None),
    "dtypes_half.pt": ({"backbone.bn1": [], "backbone.bn2": [], "bn3": []}, None),
    "dtypes_bf16.safetensors": ({"backbone.bn1": [], "backbone.bn2": [], "bn3": []}, None),
    "dtypes_double_legacy.pt": ({"backbone.bn1": [], "backbone.bn2": [], "bn3": []}, None),
    "views.pt": ({"backbone.bn1": [], "backbone.bn2": [], "bn3": []}, None),
    # a real layout (pytorch/examples imagenet): the top dict's own tensor (best_acc1) is not the state dict
    "imagenet/checkpoint.pth.tar": (
        {"backbone.bn1": ["BN002"], "backbone.bn2": ["BN002"], "bn3": ["BN002"]},
        (5, "epoch"),
    ),
    # one BN module under two names: both kept, as state_dict() keeps them
    "tied.pt": ({"1": [], "3": ["BN009"]}, None),
    "sharded": ({"backbone.bn1": [], "backbone.bn2": [], "bn3": []}, None),
    "sharded_bin": ({"backbone.bn1": [], "backbone.bn2": [], "bn3": []}, None),
}


@pytest.mark.parametrize("name", sorted(FINDINGS))
def test_findings_on_every_fixture(name: str) -> None:
    layers, step = FINDINGS[name]
    report = bncheck.inspect(str(TORCH / name))
    assert report.framework is not None and report.framework.value == "PyTorch"
    assert not report.errors
    found = {layer.name: sorted(f.code for f in report.findings if f.layer == layer.name) for layer in report.layers}
    assert found == layers
    assert (None if report.step is None else (report.step.count, report.step.source)) == step


def test_messages_speak_pytorch() -> None:
    eval_mode = bncheck.inspect(str(TORCH / "eval_mode.pt")).findings[0]
    assert "num_batches_tracked = 0: the layer never ran in train mode" in eval_mode.message
    assert "model.train()" in eval_mode.fix
    momentum_zero = bncheck.inspect(str(TORCH / "momentum_zero.pt")).findings[0]
    assert "num_batches_tracked = 30" in momentum_zero.message and "momentum=0" in momentum_zero.message
    barely = bncheck.inspect(str(TORCH / "barely.pt")).findings[0]
    assert "num_batches_tracked = 3: with momentum=0.1 (PyTorch's default" in barely.message
    assert "73% of the initial 0/1 remains" in barely.message
    partly = bncheck.inspect(str(TORCH / "partly_eval.pt"))
    assert any("num_batches_tracked is 0 in 1 of 3 BN layers (backbone.bn2)" in note for note in partly.notes)


def test_a_pickled_module_gives_its_own_momentum_and_epsilon() -> None:
    model = open_model(str(TORCH / "full_module.pt"))
    hints = model.hints
    model.close()
    assert hints["bn3"].momentum == pytest.approx(0.9) and hints["bn3"].epsilon == pytest.approx(1e-5)
    assert hints["bn3"].batches_tracked == 0


def test_unknown_classes_are_named_and_data_classes_are_not() -> None:
    ddp = bncheck.inspect(str(TORCH / "ddp_checkpoint.pth"))
    assert any("torch_models.Config" in note and "never imported or run" in note for note in ddp.notes)
    lightning = bncheck.inspect(str(TORCH / "lightning.ckpt"))  # argparse.Namespace hyper-parameters: data
    assert not any("does not know" in note for note in lightning.notes)


def test_diff_of_a_frozen_backbone() -> None:
    drifted = bncheck.diff(
        str(TORCH / "diff/base.pt"), str(TORCH / "diff/finetuned_requires_grad.pt"), frozen="backbone.*"
    )
    assert sorted(f.layer for f in drifted.findings if f.code == "BN202") == ["backbone.bn1", "backbone.bn2"]
    assert "module.eval()" in next(f for f in drifted.findings if f.code == "BN202").fix
    kept = bncheck.diff(str(TORCH / "diff/base.pt"), str(TORCH / "diff/finetuned_eval.pt"), frozen="backbone.*")
    assert not [f for f in kept.findings if f.code == "BN202"]


def test_a_pt_against_its_own_safetensors_export_is_clean() -> None:
    report = bncheck.diff(str(TORCH / "healthy.pt"), str(TORCH / "healthy.safetensors"))
    assert not report.findings
    assert [pair.name for pair in report.pairs] == ["backbone.bn1", "backbone.bn2", "bn3"]
    assert all(delta.status == "identical" for pair in report.pairs for delta in pair.deltas.values())


def test_a_scan_counts_a_sharded_checkpoint_once(tmp_path: Path) -> None:
    reports = bncheck.scan(str(TORCH))
    names = sorted(Path(r.path).relative_to(TORCH).as_posix() for r in reports)
    assert "sharded/model.safetensors.index.json" in names
    assert "sharded_bin/pytorch_model.bin.index.json" in names
    assert not [name for name in names if "-of-00002" in name]
    assert "lightning.ckpt" in names  # counted by its content: a .ckpt that torch.save wrote
    assert len(names) == len(FINDINGS) + 3  # each sharded directory once, by its index; diff/ holds three
    assert all(not r.errors for r in reports)


# --------------------------------------------------------------------------- nothing runs


class _Trap:
    def __init__(self, command: object) -> None:
        self.command = command

    def __reduce__(self):  # what a malicious checkpoint does
        return self.command


@pytest.mark.parametrize(
    "payload, named",
    [
        (lambda marker: (os.system, (f"touch {marker}",)), ("posix.system", "nt.system")),
        (lambda marker: (eval, (f"open({str(marker)!r}, 'w')",)), ("builtins.eval",)),
        (lambda marker: (subprocess.call, (["touch", str(marker)],)), ("subprocess.call",)),
        (lambda marker: (__import__("importlib").import_module, ("antigravity",)), ("importlib.import_module",)),
        (lambda marker: (getattr, ("text", "upper")), ("builtins.getattr",)),
    ],
    ids=["os.system", "eval", "subprocess", "importlib", "getattr"],
)
@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_a_pickle_that_would_run_code_is_refused_and_never_run(tmp_path: Path, payload, named, legacy) -> None:
    marker = tmp_path / "ran"
    state = torch.load(TORCH / "healthy.pt", weights_only=True)
    path = tmp_path / "trap.pt"
    torch.save({"state_dict": state, "extra": _Trap(payload(marker))}, path, _use_new_zipfile_serialization=not legacy)
    result = subprocess.run(
        [sys.executable, "-m", "bncheck", "inspect", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "loading this file with torch.load would run" in result.stderr
    assert any(name in result.stderr for name in named), result.stderr
    assert "Traceback" not in result.stderr and not marker.exists()
    with pytest.raises(UnsafeFileError):
        open_model(str(path))


def test_the_dangerous_list() -> None:
    assert runs_code("posix", "system") and runs_code("os.path", "join") and runs_code("builtins", "__import__")
    assert runs_code("torch.serialization", "load") and runs_code("runpy", "run_path")
    assert not runs_code("collections", "OrderedDict") and not runs_code("torch._utils", "_rebuild_tensor_v2")
    assert not runs_code("builtins", "set") and not runs_code("torch.nn.modules.batchnorm", "BatchNorm2d")


# --------------------------------------------------------------------------- damaged files


def _refused(tmp_path: Path, name: str, data: bytes, message: str) -> None:
    """``bncheck inspect`` of ``data`` saved as ``name``: exit 2 with one message holding ``message``."""
    path = tmp_path / name
    path.write_bytes(data)
    command = [sys.executable, "-m", "bncheck", "inspect", str(path)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)  # a hang fails, not blocks
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) <= 2


def _header_of(path: Path) -> tuple[dict, bytes]:
    raw = path.read_bytes()
    length = struct.unpack("<Q", raw[:8])[0]
    return json.loads(raw[8 : 8 + length]), raw[8 + length :]


def _with_header(header: dict | bytes, buffer: bytes) -> bytes:
    text = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + buffer


def _safetensors_cases() -> list[tuple[str, object, str]]:
    header, buffer = _header_of(TORCH / "healthy.safetensors")
    first, second = sorted((k for k in header if k != "__metadata__"), key=lambda k: header[k]["data_offsets"])[:2]
    overlapping = json.loads(json.dumps(header))
    overlapping[second]["data_offsets"] = [o - 4 for o in overlapping[second]["data_offsets"]]
    past_end = json.loads(json.dumps(header))
    last = max((k for k in header if k != "__metadata__"), key=lambda k: header[k]["data_offsets"])
    past_end[last]["data_offsets"][1] += 400
    wrong_shape = json.loads(json.dumps(header))
    wrong_shape[first]["shape"] = [999]
    text = json.dumps(header).encode()
    duplicate = text[:-1] + b", " + json.dumps({first: header[first]}).encode()[1:]
    return [
        ("huge header length", struct.pack("<Q", 1 << 40) + text, "header claims"),
        ("not UTF-8", _with_header(b'{"\xff\xfe": 1}', buffer), "not UTF-8 JSON"),
        ("overlapping", _with_header(overlapping, buffer), "overlapping"),
        ("past the end", _with_header(past_end, buffer), "spans"),
        ("wrong shape", _with_header(wrong_shape, buffer), "spans"),
        ("duplicate key", _with_header(duplicate, buffer), "twice"),
        ("truncated buffer", _with_header(header, buffer[:-10]), "cover"),
        ("not an object", _with_header(b"[1, 2]", buffer), "not a JSON object"),
    ]


@pytest.mark.parametrize("case", _safetensors_cases(), ids=lambda case: case[0])
def test_damaged_safetensors_give_one_clear_error(tmp_path: Path, case) -> None:
    _, data, message = case
    _refused(tmp_path, "model.safetensors", data, message)


def _zip_with(path: Path, replace: dict[str, bytes]) -> bytes:
    """A copy of the torch zip at ``path`` with some members' bytes replaced (as a damaged download would be)."""
    import io

    out = io.BytesIO()
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as target:
        for info in source.infolist():
            target.writestr(info, replace.get(info.filename, source.read(info.filename)))
    return out.getvalue()


def _pickle_cases() -> list[tuple[str, bytes, str]]:
    source = TORCH / "healthy.pt"
    with zipfile.ZipFile(source) as archive:
        name = next(n for n in archive.namelist() if n.endswith("/data.pkl"))
        data = archive.read(name)
        storage = next(n for n in archive.namelist() if "/data/" in n)
    legacy = (TORCH / "healthy_legacy.pt").read_bytes()
    at = data.index(b"backbone.bn1.running_var")
    size, stride = data.index(b"K\x04\x85", at), data.index(b"K\x01\x85", at)  # (4,) and (1,) of that tensor
    huge = data[:size] + b"J\x00\xca\x9a\x3b\x85" + data[size + 3 : stride] + b"K\x00\x85" + data[stride + 3 :]
    return [
        ("a billion elements from four", _zip_with(source, {name: huge}), "claims 1000000000 elements"),
        ("unknown opcode", _zip_with(source, {name: data[:2] + b"\xff" + data[3:]}), "opcode"),
        ("no STOP", _zip_with(source, {name: data[:-1]}), "STOP"),
        ("huge string length", _zip_with(source, {name: b"\x80\x02X\xff\xff\xff\x7fabc."}), "ends inside"),
        ("memo never stored", _zip_with(source, {name: data.replace(b"h\x03", b"h\xfa", 1)}), "memo entry"),
        ("storage missing", _zip_with(source, {storage: b""}), "storage"),
        ("legacy truncated", legacy[: len(legacy) - 40], "ends before storage"),
        ("legacy wrong magic", legacy[:5] + bytes([legacy[5] ^ 1]) + legacy[6:], "magic"),
    ]


@pytest.mark.parametrize("case", _pickle_cases(), ids=lambda case: case[0])
def test_damaged_torch_files_give_one_clear_error(tmp_path: Path, case) -> None:
    _, data, message = case
    _refused(tmp_path, "model.pt", data, message)


# --------------------------------------------------------------------------- hostile pickles


def _shared(depth: int, container: type) -> object:
    """A value of 2^depth items that pickles (through the memo) in a few hundred bytes."""
    value: object = ()
    for _ in range(depth):
        value = container([value, value])
    return value


def _saved(tmp_path: Path, extra: object) -> bytes:
    """healthy.pt's state dict saved by torch with one more entry, the way a crafted checkpoint would be."""
    path = tmp_path / "written.pt"
    torch.save({"state_dict": torch.load(TORCH / "healthy.pt", weights_only=True), "extra": extra}, path)
    return path.read_bytes()


def _data_pkl(source: Path = TORCH / "healthy.pt") -> tuple[str, bytes]:
    with zipfile.ZipFile(source) as archive:
        name = next(n for n in archive.namelist() if n.endswith("/data.pkl"))
        return name, archive.read(name)


def _geometry(size: bytes, stride: bytes) -> bytes:
    """healthy.pt with bn1's running_var given another size and stride tuple (pickle opcodes)."""
    name, data = _data_pkl()
    at = data.index(b"backbone.bn1.running_var")
    begin, end = data.index(b"K\x04\x85", at), data.index(b"K\x01\x85", at)
    return _zip_with(
        TORCH / "healthy.pt", {name: data[:begin] + size + data[begin + 3 : end] + stride + data[end + 3 :]}
    )


def _long(value: int) -> bytes:
    return b"\x8a\x08" + value.to_bytes(8, "little", signed=True)


def _module_dag(tmp_path: Path) -> bytes:
    module: torch.nn.Module = torch.nn.BatchNorm1d(2)
    for _ in range(40):
        module = torch.nn.Sequential(module, module)  # 2^40 paths to the one BN module
    path = tmp_path / "dag.pt"
    torch.save(module, path)
    return path.read_bytes()


def _in_data_pkl(pickled: bytes) -> Callable[[Path], bytes]:
    return lambda tmp_path: _zip_with(TORCH / "healthy.pt", {_data_pkl()[0]: pickled})


_ONES = b"(" + b"K\x01" * 65 + b"t"
# case -> (how to make the file, what the one-line error says)
HOSTILE: dict[str, tuple[Callable[[Path], bytes], str]] = {
    "SETITEM on a list": (_in_data_pkl(b"\x80\x02]K\x00K\x01s."), "sets an item of a list"),
    "SETITEM on a bytearray": (
        _in_data_pkl(b"\x80\x05\x96\x01\x00\x00\x00\x00\x00\x00\x00xK\x00K\x01s."),
        "sets an item of a bytearray",
    ),
    "a list in a set": (_in_data_pkl(b"\x80\x04\x8f(]\x90."), "uses a list as a dict key or set member"),
    # a dict keyed by a tuple of 2^40 items through the memo: hashing it would never end
    "a key hashing 2^40 items": (
        _in_data_pkl(b"\x80\x02}" + pickle.dumps(_shared(40, tuple), 2)[2:-1] + b"K\x01s."),
        "more than a thousand items",
    ),
    "str of a shared list": (lambda t: _saved(t, _Trap((str, (_shared(40, list),)))), "calls str with a list"),
    "torch.device of a shared list": (lambda t: _saved(t, _Trap((torch.device, (_shared(40, list),)))), "device"),
    "frozenset of a shared tuple": (
        lambda t: _saved(t, _Trap((frozenset, ([_shared(40, tuple)],)))),
        "more than a thousand items",
    ),
    "dict of a shared tuple": (
        lambda t: _saved(t, _Trap((dict, ([(_shared(40, tuple), 1)],)))),
        "more than a thousand items",
    ),
    "65 dimensions": (lambda t: _geometry(_ONES, _ONES), "65 dimensions"),
    "a stride of 2^62": (lambda t: _geometry(b"K\x04\x85", _long(1 << 62) + b"\x85"), "past 2^48"),
    "a shape of (2^62, 0)": (lambda t: _geometry(_long(1 << 62) + b"K\x00\x86", b"K\x01K\x01\x86"), "past 2^48"),
    "just past the expansion limit": (
        lambda t: _geometry(b"J\x05\x00\x01\x00\x85", b"K\x00\x85"),
        "claims 65541 elements",
    ),
    "2^40 module paths": (_module_dag, "submodule paths"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_hostile_pickle_is_refused_at_once(tmp_path: Path, case: str) -> None:
    make, message = HOSTILE[case]
    _refused(tmp_path, "model.pt", make(tmp_path), message)


def test_str_never_picks_a_codec(tmp_path: Path) -> None:
    """str(bytes, encoding) with an encoding the file chooses would make Python import that codec's module."""
    assert "encodings.cp1026" not in sys.modules
    path = tmp_path / "codec.pt"
    path.write_bytes(_saved(tmp_path, _Trap((str, (b"abc", "cp1026")))))
    with pytest.raises(FormatError, match="calls str"):
        open_model(str(path))
    assert "encodings.cp1026" not in sys.modules


def test_an_expanded_statistic_is_read_as_torch_reads_it(tmp_path: Path) -> None:
    state = {
        "bn.weight": torch.ones(64),
        "bn.bias": torch.zeros(64),
        "bn.running_mean": torch.full((1,), 0.25).expand(64),  # stride 0 on one element
        "bn.running_var": torch.full((1,), 2.0).expand(64),
        "bn.num_batches_tracked": torch.tensor(10),
    }
    torch.save(state, tmp_path / "expanded.pt")
    loaded = torch.load(tmp_path / "expanded.pt", weights_only=True)
    assert loaded["bn.running_var"].stride() == (0,)
    report = read_layers(open_model(str(tmp_path / "expanded.pt")))
    assert np.array_equal(report.layers[0].values["moving_variance"], loaded["bn.running_var"].numpy())
    assert np.array_equal(report.layers[0].values["moving_mean"], loaded["bn.running_mean"].numpy())


def test_tensors_of_kinds_bncheck_does_not_read_matter_only_when_they_are_bn(tmp_path: Path) -> None:
    state = dict(torch.load(TORCH / "healthy.pt", weights_only=True))
    state["spectrum"] = torch.zeros(2, dtype=torch.complex64)  # beside the BN layers: not read, not named
    state["scale8"] = torch.zeros(2, dtype=torch.float8_e4m3fn)
    state["counts16"] = torch.zeros(2, dtype=torch.uint16)
    torch.save(state, tmp_path / "beside.pt")
    report = bncheck.inspect(str(tmp_path / "beside.pt"))
    assert not report.errors and not report.findings and len(report.layers) == 3
    assert not any("does not know" in note for note in report.notes)
    state["backbone.bn1.running_var"] = state["backbone.bn1.running_var"].to(torch.complex64)
    torch.save(state, tmp_path / "complex_bn.pt")
    _refused(tmp_path, "complex_bn.pt", (tmp_path / "complex_bn.pt").read_bytes(), "a BN tensor on a torch.Complex")
    torch.save(state, tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    _refused(tmp_path, "legacy.pt", (tmp_path / "legacy.pt").read_bytes(), "which bncheck does not read")


def test_a_step_too_large_to_print_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "step.pt"
    state = torch.load(TORCH / "healthy.pt", weights_only=True)
    torch.save({"state_dict": state, "global_step": 10**20000, "epoch": 4}, path)
    result = subprocess.run(
        [sys.executable, "-m", "bncheck", "inspect", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert "step 4 (epoch)" in result.stdout


def test_an_index_naming_a_shard_outside_its_directory_is_refused(tmp_path: Path) -> None:
    shutil.copytree(TORCH / "sharded", tmp_path / "sharded")
    index = tmp_path / "sharded" / "model.safetensors.index.json"
    content = json.loads(index.read_text())
    content["weight_map"] = {k: "../../etc/passwd" for k in content["weight_map"]}
    index.write_text(json.dumps(content))
    with pytest.raises(FormatError, match="outside its directory"):
        open_model(str(index))


def test_a_missing_shard_is_named(tmp_path: Path) -> None:
    shutil.copytree(TORCH / "sharded", tmp_path / "sharded")
    (tmp_path / "sharded" / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(BncheckError, match=r"model-00002-of-00002\.safetensors is missing"):
        bncheck.inspect(str(tmp_path / "sharded"))


def test_reading_does_not_change_the_files(tmp_path: Path) -> None:
    shutil.copytree(TORCH, tmp_path / "torch")
    before = {p: p.read_bytes() for p in (tmp_path / "torch").rglob("*") if p.is_file()}
    bncheck.scan(str(tmp_path / "torch"))
    assert {p: p.read_bytes() for p in (tmp_path / "torch").rglob("*") if p.is_file()} == before
