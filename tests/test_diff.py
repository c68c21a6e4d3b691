"""bncheck diff A B: every diff story of fixtures/make_fixtures.py gives its predicted findings."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

import bncheck
from bncheck import supervisor
from bncheck.comparison import pair_layers
from bncheck.config import Settings, Thresholds
from bncheck.deltas import DiffReport
from bncheck.facts import Variable
from bncheck.layers import BNLayer
from bncheck.readers.bundle_index import BundleIndex
from bncheck.render.json import render_diff
from bncheck.report import Report
from bncheck.rules import RULES, DiffContext, Kind
from bncheck.scanning import diff_of

from .conftest import FIXTURES, run_cli

DIFF = FIXTURES / "diff"
PAIRS = sorted(p.name for p in DIFF.iterdir() if p.is_dir())
BN = ("batch_normalization", "batch_normalization_1", "batch_normalization_2")
FROZEN = ("--frozen", "batch_normalization*")


def each(code: str, layers: tuple[str, ...] = BN) -> set[tuple[str, str]]:
    return {(code, layer) for layer in layers}


# story -> (extra options, predicted findings, exit status with the default --fail-on error)
STORIES: dict[str, tuple[tuple[str, ...], set[tuple[str, str]], int]] = {
    "trained": ((), set(), 0),
    "no_updates": ((), each("BN201"), 1),
    "finetune_frozen": (FROZEN, set(), 0),
    "finetune_drift": (FROZEN, each("BN202") | {("BN204", BN[2])}, 1),
    "bn_added": ((), {("BN203", BN[2])}, 0),
    "bessel": ((), {("BN204", BN[2])}, 0),
}


def diff_json(a: str | Path, b: str | Path, *options: str) -> tuple[dict, int]:
    result = run_cli("diff", str(a), str(b), "--format", "json", *options)
    assert "Traceback" not in result.stderr, result.stderr
    return json.loads(result.stdout), result.returncode


def findings(report: dict) -> set[tuple[str, str]]:
    return {(f["code"], f["layer"]) for f in report["findings"]}


def test_every_diff_pair_has_a_prediction() -> None:
    assert set(PAIRS) == set(STORIES)
    for pair in PAIRS:
        assert sorted(p.name for p in (DIFF / pair).iterdir()) == ["a", "b"]


@pytest.mark.parametrize("story", sorted(STORIES))
def test_story_json(story: str) -> None:
    options, expected, status = STORIES[story]
    report, code = diff_json(DIFF / story / "a", DIFF / story / "b", *options)
    assert findings(report) == expected
    assert code == status
    assert report["version"] == 1 and report["a"].endswith("a") and report["b"].endswith("b")
    assert report["summary"]["errors"] == sum(f["severity"] == "error" for f in report["findings"])
    for finding in report["findings"]:
        assert set(finding) >= {"code", "name", "severity", "layer", "message"}
        assert finding["name"] == RULES[finding["code"]].name


@pytest.mark.parametrize("story", sorted(STORIES))
def test_story_table(story: str) -> None:
    options, expected, status = STORIES[story]
    result = run_cli("diff", str(DIFF / story / "a"), str(DIFF / story / "b"), *options)
    assert result.returncode == status, result.stderr
    lines = result.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines), "table wider than 80 columns"
    assert "\x1b[" not in result.stdout  # NO_COLOR, piped
    for code, layer in expected:
        assert f"{code} {RULES[code].name}" in result.stdout
        assert any(line.startswith(f"  {layer}: ") for line in lines), layer
        rows = [i for i, line in enumerate(lines) if line.startswith(f"{layer} ")]
        if code == "BN203" and "only in B: " + layer in result.stdout:
            continue  # an unpaired layer has no row
        assert code in lines[rows[0]] + lines[rows[0] + 1], (layer, lines[rows[0] : rows[0] + 2])  # one code a line
    if not expected:
        assert "0 errors, 0 warnings, 0 info" in result.stdout


def test_trained_stats_move_with_gamma_beta() -> None:
    report, _ = diff_json(DIFF / "trained" / "a", DIFF / "trained" / "b")
    assert [layer["name"] for layer in report["layers"]] == list(BN)
    for layer in report["layers"]:
        assert layer["changed"] == ["gamma", "beta", "moving_mean", "moving_variance"]
        assert all(layer[role]["max_abs"] > 0 for role in layer["changed"])
    assert report["unpaired"] == {"a": [], "b": []}
    assert report["sources"]["a"]["step"] == 30 and report["sources"]["b"]["step"] == 40


def test_no_updates_message_says_stats_are_identical() -> None:
    report, _ = diff_json(DIFF / "no_updates" / "a", DIFF / "no_updates" / "b")
    for finding in report["findings"]:
        assert "moving_mean and moving_variance are identical" in finding["message"]
    for layer in report["layers"]:
        assert layer["moving_mean"]["status"] == layer["moving_variance"]["status"] == "identical"


def test_frozen_drift_needs_frozen() -> None:
    """Without --frozen nothing says the layers should not change: only the big shift remains."""
    report, code = diff_json(DIFF / "finetune_drift" / "a", DIFF / "finetune_drift" / "b")
    assert findings(report) == {("BN204", BN[2])} and code == 0
    report, _ = diff_json(DIFF / "finetune_drift" / "a", DIFF / "finetune_drift" / "b", "--frozen", BN[1])
    assert findings(report) == {("BN202", BN[1]), ("BN204", BN[2])}
    (drift,) = [f for f in report["findings"] if f["code"] == "BN202"]
    assert "still ran in training mode" in drift["message"]


def test_frozen_glob_repeatable_and_unmatched_glob_noted() -> None:
    a, b = DIFF / "finetune_drift" / "a", DIFF / "finetune_drift" / "b"
    report, _ = diff_json(a, b, "--frozen", BN[0], "--frozen", BN[2], "--frozen", "no_such_layer*")
    assert {layer for code, layer in findings(report) if code == "BN202"} == {BN[0], BN[2]}
    assert any("no_such_layer*" in note for note in report["notes"])


def test_correctly_frozen_fine_tune_keeps_every_bn_variable() -> None:
    report, code = diff_json(DIFF / "finetune_frozen" / "a", DIFF / "finetune_frozen" / "b", *FROZEN)
    assert code == 0 and report["summary"]["identical"] == 3 and report["summary"]["changed"] == 0


def test_frozen_gamma_beta_trained_says_the_optimizer_trained_it() -> None:
    report, _ = diff_json(DIFF / "no_updates" / "a", DIFF / "no_updates" / "b", *FROZEN)
    assert findings(report) == each("BN202")  # BN201 leaves declared-frozen layers to BN202
    assert all("optimizer still trained it" in f["message"] for f in report["findings"])


def test_bn_added_is_unpaired() -> None:
    report, code = diff_json(DIFF / "bn_added" / "a", DIFF / "bn_added" / "b", "--fail-on", "warning")
    assert report["unpaired"] == {"a": [], "b": [BN[2]]} and code == 1
    assert [layer["name"] for layer in report["layers"]] == list(BN[:2])
    reverse, _ = diff_json(DIFF / "bn_added" / "b", DIFF / "bn_added" / "a")
    assert reverse["unpaired"] == {"a": [BN[2]], "b": []}
    assert "not in B" in reverse["findings"][0]["message"]


def test_stats_dropped_by_the_saver_are_removed_variables() -> None:
    report, _ = diff_json(FIXTURES / "tf1_correct", FIXTURES / "tf1_saver_trainable_only")
    assert findings(report) == each("BN203")
    for layer in report["layers"]:
        assert layer["moving_mean"]["status"] == "removed" and layer["gamma"]["status"] == "identical"


def test_nan_in_b_is_counted_not_hidden() -> None:
    report, _ = diff_json(FIXTURES / "tf1_correct", FIXTURES / "tf1_nan_negvar")
    mean = report["layers"][0]["moving_mean"]
    assert mean["status"] == "changed" and mean["nonfinite"] == 2 and mean["max_abs"] == 0.0
    table = run_cli("diff", str(FIXTURES / "tf1_correct"), str(FIXTURES / "tf1_nan_negvar")).stdout
    lines = table.splitlines()
    (row,) = [i for i, line in enumerate(lines) if line.startswith(BN[0] + " ")]
    assert re.fullmatch(r"[\s│]*2 nan[\s│]*", lines[row + 1]), lines[row : row + 2]  # box or not


def test_bessel_factor_is_a_note_not_a_shift() -> None:
    a, b = DIFF / "bessel" / "a", DIFF / "bessel" / "b"
    report, _ = diff_json(a, b)
    layers = {layer["name"]: layer for layer in report["layers"]}
    assert layers[BN[0]]["bessel_n"] == 1024 and layers[BN[1]]["bessel_n"] == 2
    assert layers[BN[2]]["bessel_n"] is None and layers[BN[2]]["variance_ratio"] == pytest.approx(2.5)
    assert layers[BN[1]]["moving_variance"]["max_rel"] == pytest.approx(1.0)
    bessel_notes = [note for note in report["notes"] if "Bessel" in note]
    assert len(bessel_notes) == 2 and "1024/1023" in bessel_notes[0] and "2/1" in bessel_notes[1]
    # With a threshold every rescaled layer exceeds, only the non-Bessel factor is a shift.
    for shift in ("0.5", "0.0001"):
        report, _ = diff_json(a, b, "--shift", shift)
        assert findings(report) == {("BN204", BN[2])}, shift
    report, _ = diff_json(a, b, "--shift", "2")
    assert findings(report) == set()


def test_bessel_factor_either_way_round() -> None:
    report, _ = diff_json(DIFF / "bessel" / "b", DIFF / "bessel" / "a", "--shift", "0.0001")
    assert findings(report) == {("BN204", BN[2])}
    assert any("A x 1023/1024" in note for note in report["notes"])


def test_tolerances_decide_what_changed() -> None:
    a, b = DIFF / "no_updates" / "a", DIFF / "no_updates" / "b"
    report, code = diff_json(a, b, "--atol", "0.1")  # gamma/beta moved by < 0.02
    assert findings(report) == set() and code == 0
    assert {layer["gamma"]["status"] for layer in report["layers"]} == {"within"}
    report, _ = diff_json(a, b, "--rtol", "0.5")  # < 50 % of |a| for gamma (~1), not always for beta (~0)
    assert {layer["gamma"]["status"] for layer in report["layers"]} == {"within"}
    beta_changed = {layer["name"] for layer in report["layers"] if layer["beta"]["status"] == "changed"}
    assert beta_changed and findings(report) == each("BN201", tuple(beta_changed))
    report, _ = diff_json(DIFF / "trained" / "a", DIFF / "trained" / "b", "--rtol", "100", "--atol", "1")
    assert report["summary"]["changed"] == 0
    table = run_cli("diff", str(a), str(b), "--atol", "0.1").stdout
    assert re.search(r"^batch_normalization_2[\s│]+~", table, re.MULTILINE), table


def test_fail_on_select_ignore() -> None:
    a, b = str(DIFF / "no_updates" / "a"), str(DIFF / "no_updates" / "b")
    assert run_cli("diff", a, b).returncode == 1
    assert run_cli("diff", a, b, "--fail-on", "never").returncode == 0
    assert run_cli("diff", a, b, "--ignore", "BN201").returncode == 0
    assert run_cli("diff", a, b, "--select", "BN202,BN203").returncode == 0
    added = (str(DIFF / "bn_added" / "a"), str(DIFF / "bn_added" / "b"))
    assert run_cli("diff", *added).returncode == 0
    assert run_cli("diff", *added, "--fail-on", "warning").returncode == 1
    assert run_cli("diff", *added, "--fail-on", "info").returncode == 1


@pytest.mark.parametrize("scenario", ["tf1_correct", "tf1_no_control_deps", "tf2_fit"])
def test_self_diff_is_empty(scenario: str) -> None:
    """A checkpoint against itself: every layer identical, and no inspect rule runs (BN002 stays out)."""
    path = str(FIXTURES / scenario)
    report, code = diff_json(path, path)
    assert code == 0 and report["findings"] == [] and report["notes"] == []
    assert report["summary"]["identical"] == report["summary"]["paired"] > 0
    table = run_cli("diff", path, path)
    n = report["summary"]["paired"]
    assert table.returncode == 0 and f"0 errors, 0 warnings, 0 info; {n} layers paired: 0 changed, {n} identical" in (
        " ".join(table.stdout.split())
    )


def test_python_api() -> None:
    report = bncheck.diff(str(DIFF / "finetune_drift" / "a"), str(DIFF / "finetune_drift" / "b"), frozen=(BN[0],))
    assert {(f.code, f.layer) for f in report.findings} == {("BN202", BN[0]), ("BN204", BN[2])}
    assert [pair.name for pair in report.pairs] == list(BN)
    assert report.pairs[0].changed() == ["moving_mean", "moving_variance"]


@pytest.mark.parametrize(
    "paths",
    [
        ("nope/model.ckpt", "tf1_correct"),
        ("tf1_correct", "nope/model.ckpt"),
        ("tf1_correct", "make_fixtures.py"),
    ],
    ids=["missing A", "missing B", "not a model"],
)
def test_bad_input_is_exit_2_with_a_message(paths: tuple[str, str]) -> None:
    a, b = (str(FIXTURES / p) for p in paths)
    bad = a if "tf1_correct" not in a else b
    for fmt in ("table", "json"):
        result = run_cli("diff", a, b, "--format", fmt)
        assert result.returncode == 2
        assert result.stderr.startswith("bncheck: error: ") and Path(bad).name in result.stderr
        assert "Traceback" not in result.stderr and result.stdout == ""


def test_unreadable_data_is_exit_2(tmp_path: Path) -> None:
    """An index without its data shard: names compared, values not read, exit 2."""
    for file in (FIXTURES / "diff" / "trained" / "b").iterdir():
        if ".data-" not in file.name:
            (tmp_path / file.name).write_bytes(file.read_bytes())
    report, code = diff_json(DIFF / "trained" / "a", tmp_path)
    assert code == 2 and report["errors"]
    assert {layer["gamma"]["status"] for layer in report["layers"]} == {"not read"}


def test_layers_whose_values_cannot_be_read_are_named_in_the_errors(tmp_path: Path) -> None:
    """A copy of B with a damaged tensor in a paired layer and one in the layer only B has: both layers are
    unreadable on side B (the pair's deltas 'not read'), the errors name each, the others compare as ever."""
    damaged = tmp_path / "b"
    shutil.copytree(DIFF / "bn_added" / "b", damaged)
    index = BundleIndex(str(next(damaged.glob("*.index"))))
    data = next(damaged.glob("*.data-*"))
    raw = bytearray(data.read_bytes())
    for name in ("batch_normalization_1/gamma", "batch_normalization_2/moving_mean"):
        raw[index._entry(name).offset] ^= 0xFF
    data.write_bytes(bytes(raw))
    report = bncheck.diff(str(DIFF / "bn_added" / "a"), str(damaged))
    unreadable = {layer.name for layer in report.b.layers if layer.unreadable}
    assert unreadable == {"batch_normalization_1", "batch_normalization_2"}
    assert len(report.b.errors) == 2 and all("checksum mismatch" in error for error in report.b.errors)
    assert not report.a.errors and not any(layer.unreadable for layer in report.a.layers)
    pairs = {pair.name: pair for pair in report.pairs}
    assert {d.status for d in pairs["batch_normalization_1"].deltas.values()} == {"not read"}
    assert pairs["batch_normalization_1"].b is next(x for x in report.b.layers if x.name == "batch_normalization_1")
    assert {d.status for d in pairs["batch_normalization"].deltas.values()} != {"not read"}
    _, code = diff_json(DIFF / "bn_added" / "a", damaged)
    assert code == 2


def test_output_file(tmp_path: Path) -> None:
    out = tmp_path / "diff.json"
    a, b = str(DIFF / "bn_added" / "a"), str(DIFF / "bn_added" / "b")
    result = run_cli("diff", a, b, "--format", "json", "-o", str(out))
    assert result.returncode == 0 and result.stdout == ""
    assert findings(json.loads(out.read_text())) == {("BN203", BN[2])}


def test_across_formats_keras_file_and_its_weights_and_export() -> None:
    keras_dir = FIXTURES / "keras" / "k3_fit"
    for other in ("model.weights.h5", "export"):
        report, code = diff_json(keras_dir / "model.keras", keras_dir / other)
        assert code == 0 and report["findings"] == [], other
        assert report["summary"]["paired"] == 3 == report["summary"]["identical"], other


def test_rules_catalogue_lists_and_documents_diff_rules() -> None:
    listing = run_cli("rules").stdout
    for code in ("BN201", "BN202", "BN203", "BN204"):
        assert RULES[code].kind is Kind.DIFF and code in listing
        doc = run_cli("rules", code).stdout
        assert all(word in doc for word in ("Why it matters", "TF1", "Keras", "TF2", "Silence")), code
    assert all(rule.kind is Kind.INSPECT for code, rule in RULES.items() if not code.startswith("BN2"))


def test_diff_fixtures_match_tensorflow() -> None:
    """The values bncheck compares are the ones TensorFlow wrote."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    for pair in PAIRS:
        for side in ("a", "b"):
            path = str(DIFF / pair / side)
            reader = tf.train.load_checkpoint(path)
            report = bncheck.inspect(path)
            for layer in report.layers:
                for role, variable in layer.variables.items():
                    theirs = reader.get_tensor(variable.key)
                    assert np.array_equal(layer.values[role], theirs), (pair, side, variable.key)


def test_roles_one_file_cannot_map_are_a_note_not_training() -> None:
    """A .keras file and its own .weights.h5: every shared variable bit-identical. The .weights.h5 (no
    config) cannot say whether a 3-variable layer's vars/0 is gamma or beta: not compared, no BN201/BN203."""
    keras_dir = FIXTURES / "keras" / "k3_center_scale"
    for a, b in (("model.keras", "model.weights.h5"), ("model.weights.h5", "model.keras")):
        report, code = diff_json(keras_dir / a, keras_dir / b)
        assert code == 0 and report["findings"] == [], (a, b)
        layers = {layer["name"]: layer for layer in report["layers"]}
        assert layers["bn_nocenter"]["gamma"]["status"] == "not mapped"
        assert layers["bn_noscale"]["beta"]["status"] == "not mapped"
        assert report["summary"]["identical"] == 3 and report["summary"]["changed"] == 0
        assert sum("not compared" in note for note in report["notes"]) == 2


def _layer(name: str, values: dict[str, np.ndarray]) -> BNLayer:
    """A BN layer built in code, its variables read from ``values``."""
    variables = {
        role: Variable(
            f"{name}/{role}", f"{name}/{role}", str(v.dtype), v.shape, lambda key: values[key.rpartition("/")[2]]
        )
        for role, v in values.items()
    }
    return BNLayer(name, variables, values=values)


def test_a_removed_gamma_is_not_training() -> None:

    stats = {"moving_mean": np.full(4, 0.5, np.float32), "moving_variance": np.full(4, 2.0, np.float32)}
    a = _layer("bn", {"gamma": np.full(4, 1.5, np.float32), **stats})
    b = _layer("bn", dict(stats))
    report = DiffReport(Report("a", "test"), Report("b", "test"), [pair_layers(a, b)])
    context = DiffContext((), Thresholds())
    assert list(RULES["BN201"].run(report, context)) == []
    (finding,) = RULES["BN203"].run(report, context)
    assert finding.message == "gamma missing in B"
    b_trained = _layer("bn", {"gamma": np.full(4, 1.25, np.float32), **stats})
    (trained,) = RULES["BN201"].run(
        DiffReport(Report("a", "test"), Report("b", "test"), [pair_layers(a, b_trained)]), context
    )
    assert trained.message.startswith("gamma by up to 0.25")


def test_diff_streams_values_and_keeps_only_the_changes() -> None:
    """A chunk of layers at a time: the report holds each side's layers as read, neither values nor Stats
    (memory bounded: inspect summarises a model), and the deltas are those of the values (a checkpoint against
    itself: every layer identical)."""
    prefix = str(next((FIXTURES / "tf1_many_vars").glob("*.index")))[: -len(".index")]
    report = bncheck.diff(prefix, prefix)
    assert len(report.pairs) > 100
    for side in (report.a, report.b):
        assert all(not layer.values and not layer.stats and not layer.unreadable for layer in side.layers)
    assert all(pair.identical and pair.a.variables.keys() == pair.b.variables.keys() for pair in report.pairs)
    inspected = {layer.name: layer.channels for layer in bncheck.inspect(prefix).layers}
    assert {pair.name: pair.deltas["gamma"].shape_a for pair in report.pairs} == {
        name: (channels,) for name, channels in inspected.items()
    }


@pytest.mark.parametrize(
    ("a", "b", "part"),
    [
        (DIFF / "finetune_drift" / "a", DIFF / "finetune_drift" / "b", 1),  # every list in parts of one
        (FIXTURES / "tf1_many_vars", FIXTURES / "tf1_many_vars", supervisor.PART),  # 2,000 layers a side
    ],
)
def test_a_diff_from_a_worker_comes_back_in_parts_as_it_was(
    a: Path, b: Path, part: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker sends the sides' layers and the pairs a part at a time (one pickle of 20,000 pairs and their
    layers cost 95 MB more); the supervisor's report is the one made in this process, each pair holding the
    very layers of its sides."""
    monkeypatch.setattr(supervisor, "PART", part)  # the worker is forked: it sees this
    settings = Settings()
    alone = bncheck.diff(str(a), str(b), settings)
    sent = diff_of(str(a), str(b), settings)
    assert len(sent.a.layers) > part and len(sent.pairs) > part
    assert _json(sent) == _json(alone)
    for side, mine in ((sent.a, alone.a), (sent.b, alone.b)):
        assert [(x.name, x.variables.keys(), x.hints, x.unreadable) for x in side.layers] == [
            (x.name, x.variables.keys(), x.hints, x.unreadable) for x in mine.layers
        ]
    a_layers, b_layers = {id(x) for x in sent.a.layers}, {id(x) for x in sent.b.layers}
    assert all(id(pair.a) in a_layers and id(pair.b) in b_layers for pair in sent.pairs)
    assert all(pair.a.name == pair.b.name == pair.name for pair in sent.pairs)


def _json(report: DiffReport) -> str:
    stream = io.StringIO()
    render_diff(report, stream)
    return stream.getvalue()
