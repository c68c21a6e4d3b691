"""Real TF 1.x training graphs (../shared/realworld: svhn TF 1.4, dncnn/mmd_gan TF 1.13,
tf14_slim_stoch_depth TF 1.4.1) judged with values TensorFlow wrote under their checkpoints'
names and shapes (fixtures/make_realworld_fixtures.py): statistics left at 0/1 give BN002 with
the graph's cause; statistics that moved give no error."""

from __future__ import annotations

import json
from collections import Counter

import pytest

import bncheck
from bncheck.findings import Severity
from bncheck.report import Report

from .conftest import FIXTURES, realworld, run_cli

DENOISE = "denoise_bn_bug_index_meta/models/trained"
GRAPHS = {  # fixture set -> (checkpoint name, the real .meta)
    "svhn_slim_index_meta": ("model.ckpt", "svhn_slim_index_meta/checkpoint/model.ckpt.meta"),
    "dncnn": ("dncnn.ckpt", f"{DENOISE}/dncnn.ckpt.meta"),
    "mmd_gan": ("mmd_gan.ckpt", f"{DENOISE}/mmd_gan.ckpt.meta"),
    "tf14_slim_stoch_depth": ("model.ckpt", "tf14_slim_stoch_depth/20171218-004853/model.ckpt.meta"),
}


def paired(name: str, story: str) -> Report:
    checkpoint, meta = GRAPHS[name]
    return bncheck.inspect(str(FIXTURES / "realworld" / name / story / checkpoint), meta=str(realworld(meta)))


def codes(report: Report) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {layer.name: set() for layer in report.layers}
    for finding in report.findings:
        found[finding.layer].add(finding.code)
    return found


def errors(report: Report) -> list[str]:
    return [f"{f.code} {f.layer}" for f in report.findings if f.severity == Severity.ERROR]


@pytest.mark.parametrize("name", list(GRAPHS))
def test_every_layer_reads_each_statistic_from_its_own_variable(name: str) -> None:
    """The fused training ops take empty constants: moving_variance was taken from moving_mean."""
    report = paired(name, "stale")
    assert report.layers
    for layer in report.layers:
        for role in ("moving_mean", "moving_variance"):
            assert layer.variables[role].name == f"{layer.name}/{role}"


@pytest.mark.parametrize("relative", ["svhn_slim_index_meta/checkpoint", f"{DENOISE}/dncnn.ckpt"])
def test_index_only_originals_read_each_statistic_from_its_own_variable(relative: str) -> None:
    result = run_cli("inspect", "--format", "json", str(realworld(relative)))
    (file,) = json.loads(result.stdout)["files"]
    for layer in file["layers"]:
        assert layer["variables"]["moving_variance"]["key"] == f"{layer['name']}/moving_variance"


def test_svhn_stale_statistics_are_bn002_not_a_zero_variance() -> None:
    report = paired("svhn_slim_index_meta", "stale")
    assert codes(report) == {"BatchNorm": {"BN002"}, "BatchNorm_1": {"BN002"}, "BatchNorm_2": {"BN002"}}


def test_svhn_trained_statistics_pass() -> None:
    report = paired("svhn_slim_index_meta", "trained")
    assert report.findings == [] and not report.errors


def test_dncnn_stale_statistics_name_the_uncollected_keras_updates() -> None:
    report = paired("dncnn", "stale")
    assert len(report.layers) == 15
    assert set(map(frozenset, codes(report).values())) == {frozenset({"BN002", "BN102", "BN103"})}
    (message,) = [f.message for f in report.findings if f.code == "BN002" and f.layer == "batch_normalization_v1"]
    assert "cause: update ops `batch_normalization_v1/AssignMovingAvg` (+1 more) are not in UPDATE_OPS" in message


@pytest.mark.parametrize("name", ["dncnn", "mmd_gan", "svhn_slim_index_meta"])
def test_trained_statistics_are_no_error_whatever_the_graph_says(name: str) -> None:
    report = paired(name, "trained")
    assert errors(report) == [] and not report.errors
    for finding in report.findings:  # the graph's update-op findings, a severity lower and saying why
        assert finding.code in ("BN101", "BN102", "BN103")
        assert finding.severity == (Severity.INFO if finding.code == "BN103" else Severity.WARNING)
        assert "yet the saved statistics are not 0/1" in finding.message


def test_mmd_gan_stale_statistics_have_a_cause_per_layer_kind() -> None:
    report = paired("mmd_gan", "stale")
    found = codes(report)
    assert len(found) == 27
    generator = {name: c for name, c in found.items() if name.startswith("generator/")}
    discriminator = {name: c for name, c in found.items() if name.startswith(("d_encoder/", "d_decoder/"))}
    assert len(generator) == 15 and len(discriminator) == 12
    assert all(c == {"BN002", "BN102", "BN103"} for c in generator.values())  # tf.keras: updates not wired
    assert all(c == {"BN002", "BN101"} for c in discriminator.values())  # tf.layers without training=
    (message,) = [
        f.message for f in report.findings if f.code == "BN002" and f.layer == "d_encoder/batch_normalization"
    ]
    assert "cause: the training graph has no update ops for this layer" in message


def test_stoch_depth_real_values_are_healthy() -> None:
    report = bncheck.inspect(str(realworld("tf14_slim_stoch_depth/20171218-004853")))
    assert len(report.layers) == 19 and report.findings == [] and not report.errors


def test_stoch_depth_stale_statistics_are_bn002_without_a_graph_cause() -> None:
    """updates_collections=None: the graph runs the updates in place, so it shows no cause."""
    report = paired("tf14_slim_stoch_depth", "stale")
    assert Counter(f.code for f in report.findings) == {"BN002": 19}
    assert not any("cause" in f.message for f in report.findings)


def test_cli_pairs_a_real_graph_with_meta() -> None:
    checkpoint, meta = GRAPHS["dncnn"]
    path = FIXTURES / "realworld" / "dncnn" / "stale" / checkpoint
    result = run_cli("inspect", str(path), "--meta", str(realworld(meta)), "--format", "json")
    assert result.returncode == 1
    summary = json.loads(result.stdout)["summary"]
    assert (summary["errors"], summary["warnings"]) == (30, 15)
    trained = run_cli(
        "inspect", str(FIXTURES / "realworld" / "dncnn" / "trained" / checkpoint), "--meta", str(realworld(meta))
    )
    assert trained.returncode == 0, trained.stdout
