"""The CLI's streamed analysis (a chunk of layers loaded at a time, values dropped, Stats packed)
judges and summarises exactly as the kept-values analysis of the Python API does."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from bncheck import analysis
from bncheck.config import Settings
from bncheck.layers import BNLayer
from bncheck.readers import open_with_graph
from bncheck.report import Report
from bncheck.stats import PackedStats, Stats, summarise

from .conftest import FIXTURES, SCENARIOS


def _analyse(name: str, keep_values: bool) -> Report:
    return analysis.analyse(open_with_graph(str(FIXTURES / name)), Settings(), keep_values=keep_values)


def _findings(report: Report) -> list[tuple[str, str | None, str, str]]:
    return [(f.code, f.layer, f.severity.label, f.message) for f in report.findings]


@pytest.mark.parametrize("name", SCENARIOS)
def test_one_layer_per_chunk_without_values_finds_the_same(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    kept = _analyse(name, keep_values=True)
    monkeypatch.setattr(analysis, "CHUNK_ELEMENTS", 1)  # every layer its own chunk: evidence must read ahead
    streamed = _analyse(name, keep_values=False)
    assert _findings(streamed) == _findings(kept)
    assert streamed.errors == kept.errors
    for a, b in zip(streamed.layers, kept.layers, strict=True):
        assert not a.values and isinstance(a.stats, PackedStats)
        assert dict(a.stats) == dict(b.stats), a.name
        assert set(b.stats) == set(b.values) and a.stats_digest == b.stats_digest


def test_evidence_from_a_layer_further_on() -> None:
    """bn_plain has no gamma/beta and the file no step: only bn_scaled, after it, shows training."""
    for keep_values in (True, False):
        report = _analyse("tf1_no_step_plain_bn", keep_values)
        (finding,) = [f for f in report.findings if f.code == "BN002" and f.layer == "bn_plain"]
        assert "yet the model trained (gamma/beta moved in 1 other layer(s), e.g. bn_scaled)" in finding.message


arrays = hnp.arrays(
    st.sampled_from([np.float16, np.float32, np.float64, np.int32, np.uint8]),
    hnp.array_shapes(min_dims=0, max_dims=2, min_side=0, max_side=6),
    elements={"allow_subnormal": False},
)


@given(st.lists(arrays, max_size=6))
@example([np.full(4, 4.49423284e307)])  # a sum that overflows float64 (found by this test)
def test_summaries_are_those_of_numpy(values: list[np.ndarray]) -> None:
    for value, stats in zip(values, summarise(values), strict=True):
        flat = value.astype(np.float64).ravel()
        finite = flat[np.isfinite(flat)]
        assert (stats.size, stats.nonfinite) == (flat.size, flat.size - finite.size)
        if finite.size:
            assert (stats.min, stats.max) == (finite.min(), finite.max())
            # the same sum up to its order (numpy's reduce sums pairwise, reduceat in sequence)
            scale = float(np.abs(finite).max()) or 1.0
            mean = float(np.add.reduce(finite / scale)) / finite.size * scale  # scaled: no overflow near 1.8e308
            assert math.isclose(stats.mean, mean, rel_tol=1e-12, abs_tol=1e-12 * scale)
        else:
            assert stats.min is stats.max is stats.mean is None


numbers = st.floats(allow_nan=False) | st.none()  # None is kept as NaN, which a min/max/mean never is
roles = st.sampled_from(["gamma", "beta", "moving_mean", "moving_variance", "renorm_mean"])


@given(
    st.dictionaries(roles, st.builds(Stats, st.integers(0, 2**40), st.integers(0, 2**40), numbers, numbers, numbers))
)
def test_packed_stats_give_back_what_was_packed(stats: dict[str, Stats]) -> None:
    packed = PackedStats(stats)
    assert dict(packed) == stats and list(packed) == list(stats) and len(packed) == len(stats)
    assert packed.get("moving_stddev") is None


def test_every_bn_tensor_is_read_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Also when a rule asks whether the model trained at all (no step; tf1_untrained saves step 0)."""
    from bncheck.readers.bundle import Bundle

    reads: list[str] = []
    original, original_many = Bundle.read, Bundle.read_many
    monkeypatch.setattr(Bundle, "read", lambda self, name: reads.append(name) or original(self, name))
    monkeypatch.setattr(Bundle, "read_many", lambda self, names: reads.extend(names) or original_many(self, names))
    monkeypatch.setattr(analysis, "CHUNK_ELEMENTS", 1)
    for name in ("tf1_untrained", "tf1_no_step_plain_bn"):
        reads.clear()
        report = _analyse(name, keep_values=False)
        bn = [variable.key for layer in report.layers for variable in layer.variables.values()]
        assert sorted(reads) == sorted([*bn, *(["global_step"] if name == "tf1_untrained" else [])]), name


def test_multi_file_json_gives_each_file_its_own_layers() -> None:
    import json

    from .conftest import run_cli

    names = ["tf1_correct", "tf1_untrained", "tf1_slim_names"]
    result = run_cli("inspect", *(str(FIXTURES / name) for name in names), "--format", "json")
    for name, file in zip(names, json.loads(result.stdout)["files"], strict=True):
        report = _analyse(name, keep_values=True)
        assert [layer["name"] for layer in file["layers"]] == [layer.name for layer in report.layers]
        for layer, ours in zip(file["layers"], report.layers, strict=True):
            for role, variable in layer["variables"].items():
                stats = ours.stats[role]
                assert variable["stats"] == {"min": stats.min, "max": stats.max, "mean": stats.mean, "nonfinite": 0}


def test_api_leaves_files_open_for_later_loads() -> None:
    """bncheck.inspect() keeps the model readable (the CLI closes each model's files after it)."""
    import bncheck

    for name in ("keras/k3_fit/model.keras", "keras/tfk_fit/model.h5", "tf1_correct"):
        report = bncheck.inspect(str(FIXTURES / name))
        variable = report.layers[0].variables["moving_mean"]
        assert np.array_equal(variable.load(), report.layers[0].values["moving_mean"]), name


def _layer(**values: np.ndarray) -> BNLayer:
    return BNLayer("bn", {}, values=values, stats=dict(zip(values, summarise(list(values.values())), strict=True)))


@pytest.mark.parametrize(
    ("variance", "message"),
    [
        ([-np.inf, 0.5, 1.0], "negative in 1 of 3 channels (min -inf)"),
        ([-np.inf, 0.0, 1.0], "negative in 1 of 3 channels (min -inf)"),
        ([np.nan, -2.0, 1.0], "negative in 1 of 3 channels (min -2)"),
        ([np.nan, 0.0, 1.0], "exactly 0 in 1 of 3 channels"),
        ([np.nan, np.inf, 1.0], None),
    ],
)
def test_negative_variance_including_infinity(variance: list[float], message: str | None) -> None:
    from bncheck.rules import RULES, Context

    layer = _layer(moving_mean=np.zeros(3, "float32"), moving_variance=np.array(variance, "float32"))
    found = list(RULES["BN005"].run(layer, Context(None, Settings().thresholds)))
    assert [f.message.removeprefix("moving_variance ") for f in found] == ([message] if message else [])


@pytest.mark.parametrize("count", [2, 3, 9, 11, 1000])
def test_a_mean_whose_sum_overflows_is_still_the_mean(count: int) -> None:
    largest = np.finfo("float64").max
    (stats,) = summarise([np.full(count, largest)])
    assert stats.mean == pytest.approx(largest, rel=1e-15) and math.isfinite(stats.mean)
    (stats,) = summarise([np.array([1.5e308, 1.5e308, -1.0], "float64")])
    assert stats.mean == pytest.approx(1e308)
