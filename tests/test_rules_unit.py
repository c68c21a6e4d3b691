"""Every rule on BN layers built in code, in the yamllint style: a few lines in, findings out. Each threshold is
tried just below, at and just above its default (bncheck/thresholds.py)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from bncheck.deltas import DiffReport
from bncheck.facts import BatchStatistics, Framework
from bncheck.findings import Severity
from bncheck.layers import BNLayer
from bncheck.rules import RULES

from .rulekit import BETA, GAMMA, MEAN, ONES, VAR, ZEROS, diff, fired, fresh, graph, layer, one, run

ERROR, WARNING, INFO = Severity.ERROR, Severity.WARNING, Severity.INFO
HEALTHY = {"gamma": GAMMA, "beta": BETA, "mean": MEAN, "var": VAR}  # layer() keyword -> its default
TRAINED = "global_step = 100"  # the evidence that the model around a layer trained
FROZEN = "— frozen layer (trainable=False): training does not update it"
MOVED = "they were updated some other way"  # an update-op finding a step down: the statistics moved all the same


def f64(*values: float) -> np.ndarray:
    """Exact values for a boundary (float32 would round them)."""
    return np.array(values, dtype=np.float64)


def first(values: list[float], value: float) -> list[float]:
    return [value, *values[1:]]


def fires(code: str, subject: object, severity: Severity, *words: str, **context: object):
    """A case: rule ``code`` on ``subject`` finds one finding per ``words``, each at ``severity`` and saying them."""
    return pytest.param(code, subject, context, [(severity, w) for w in words], id=f"{code} {words[0][:60]}")


def silent(code: str, subject: object, why: str, **context: object):
    """A case: rule ``code`` finds nothing in ``subject``, for the reason ``why``."""
    return pytest.param(code, subject, context, [], id=f"{code} silent: {why}")


NEAR = layer(mean=first(ZEROS, 0.005), var=ONES)  # statistics within 0.005 of 0/1, gamma/beta trained
STALE = fresh(gamma=GAMMA)  # gamma trained, the statistics still 0/1
STATS_ONLY = fresh(gamma=None, beta=None)  # a layer without gamma/beta, statistics at 0/1
SLOTTED = layer(slots={"moving_mean": ["m"]})  # statistics trained by an optimizer
EMA = layer(slots={"moving_mean": ["ExponentialMovingAverage"]})  # an EMA shadow: not an optimizer's slot
TINY = [1e-8, 1, 1, 1]  # a variance that amplifies 1e4-fold unless epsilon bounds it
NO_OPS = graph(update_ops=())
NO_VAR_OPS = graph(var={"update_ops": ()})
UNSAVED, TRAINABLE = graph(saved=False), graph(trainable=True)
NOT_RUN = graph(updates_run=False)
UNCOLLECTED = graph(updates_run=False, updates_collected=False)  # a tf.keras layer in a TF1 graph
GAMMA_B = first(GAMMA, 1.2)  # gamma of B: one channel trained by 0.1
MEAN_B = np.nextafter(np.float32(MEAN), np.float32(1))  # one float32 step from MEAN
BASE_VAR = np.float32([1, 2, 3, 4])


def amplifying(factor: float) -> BNLayer:
    """A layer whose first channel multiplies by exactly ``factor``: sqrt(2**-20 + epsilon 0) = 2**-10."""
    return layer(gamma=f64(factor / 1024, 1, 1, 1), var=f64(2**-20, 1, 1, 1), epsilon=0.0)


def to(**b: object) -> DiffReport:
    """A diff from the healthy layer to ``layer(**b)``."""
    return diff((layer(), layer(**b)))


def shift(a: list[float], b: list[float]) -> DiffReport:
    return diff((layer(mean=a), layer(mean=b)))


def scaled(factor: float) -> DiffReport:
    return diff((layer(var=BASE_VAR), layer(var=BASE_VAR * np.float32(factor))))


CASES = [
    # BN001 missing-moving-stats
    fires("BN001", layer(mean=None), ERROR, "gamma/beta saved but moving_mean missing: restored, they would be 0/1"),
    fires("BN001", layer(mean=None, var=None), ERROR, "gamma/beta saved but moving_mean and moving_variance missing"),
    fires("BN001", layer(beta=None, var=None), ERROR, "gamma saved but moving_variance missing"),
    fires("BN001", layer(var=None), ERROR, "— cause: the graph's Saver (save/SaveV2) does not", graph=UNSAVED),
    silent("BN001", layer(), "statistics saved"),
    silent("BN001", layer(gamma=None, beta=None, mean=None), "no gamma/beta either: not a BN layer's remains"),
    silent("BN001", layer(mean=None, var=None, training_in=(BatchStatistics("x"),)), "BN013: the graph needs none"),
    # BN002 stats-never-updated
    fires("BN002", STALE, ERROR, "moving_mean all 0 and moving_variance all 1, yet gamma/beta trained (max |gamma - 1|"
          " = 0.2)"),
    fires("BN002", fresh(gamma=first(ONES, np.nan)), ERROR, "yet gamma/beta trained (max |gamma - 1| = 0 and 1 gamma"),
    fires("BN002", STATS_ONLY, ERROR, "yet the model trained (global_step = 100)", evidence=TRAINED),
    fires("BN002", fresh(gamma=None, beta=None, trainable=False), INFO, FROZEN, evidence=TRAINED),
    fires("BN002", fresh(gamma=GAMMA, trainable=False), ERROR, "— the layer is frozen, but its gamma/beta trained"),
    fires("BN002", STALE, ERROR, "— cause: the training graph has no update ops for this layer", graph=NO_OPS),
    fires("BN002", STALE, ERROR, "— cause: train op `train_op` does not depend on `bn/Assign", graph=NOT_RUN),
    fires("BN002", STALE, ERROR, "are not in UPDATE_OPS and train op `train_op` depends on none", graph=UNCOLLECTED),
    fires("BN002", STALE, ERROR, "likely cause: the update ops run, but their momentum depends on "
          "`keras_learning_phase`", graph=graph(decay_placeholder="keras_learning_phase")),
    silent("BN002", STATS_ONLY, "no gamma/beta and nothing says the model trained (BN003's)"),
    silent("BN002", fresh(), "nothing trained (BN003's)", step=100, evidence=TRAINED),
    silent("BN002", fresh(gamma=GAMMA, mean=first(ZEROS, 1e-6)), "one statistic moved, however little", step=100),
    silent("BN002", fresh(gamma=GAMMA, var=VAR), "moving_variance moved"),
    # BN003 layer-untrained
    fires("BN003", fresh(), WARNING, "gamma, beta, moving_mean and moving_variance all at their initial values; the "
          "whole model looks untrained"),
    fires("BN003", fresh(), WARNING, "the model trained (global_step = 100) but not this layer", evidence=TRAINED),
    fires("BN003", STATS_ONLY, WARNING, "the whole model looks untrained"),
    fires("BN003", fresh(trainable=False), INFO, f"the whole model looks untrained {FROZEN}"),
    silent("BN003", STATS_ONLY, "no gamma/beta in a trained model (BN002's)", evidence=TRAINED),
    *(silent("BN003", fresh(**{r: v}), f"{r} moved") for r, v in HEALTHY.items()),
    # BN004 non-finite-stats (NaN and Inf are its alone: test_non_finite_values_are_bn004s)
    fires("BN004", layer(gamma=first(GAMMA, np.nan), var=[np.inf, np.nan, 1, 1]), ERROR,
          "non-finite values in gamma: 1 of 4; moving_variance: 2 of 4"),
    silent("BN004", layer(gamma=[3e38] * 4, var=[1e-45] * 4), "extreme but finite"),
    # BN005 non-positive-variance
    fires("BN005", layer(var=[0.8, -0.5, 2, 0.6]), ERROR, "moving_variance negative in 1 of 4 channels (min -0.5)"),
    fires("BN005", layer(var=[0.8, -1e-30, 0, 0.6]), ERROR, "moving_variance negative in 1 of 4 channels (min -1e-30)"),
    fires("BN005", layer(var=[0.8, -np.inf, 2, 0.6]), ERROR, "moving_variance negative in 1 of 4 channels (min -inf)"),
    fires("BN005", layer(var=[0.8, 0.0, -0.0, 0.6]), WARNING, "moving_variance exactly 0 in 2 of 4 channels"),
    silent("BN005", layer(var=[1e-30] * 4), "positive, however small"),
    silent("BN005", layer(var=[0.8, np.nan, np.inf, 0.6]), "NaN and +Inf: BN004's"),
    silent("BN005", layer(var=None), "no variance"),
    # BN006 stats-barely-updated (its thresholds: test_bn006_*)
    fires("BN006", NEAR, WARNING, "moving statistics within 0.005 of their initial 0/1 while gamma/beta trained"),
    silent("BN006", layer(), "far from 0/1"),
    # BN007 extreme-amplification: |gamma| / sqrt(var + epsilon) > amplification (1e3)
    silent("BN007", amplifying(999), "factor 999"),
    silent("BN007", amplifying(1000), "factor 1000, at the limit"),
    fires("BN007", amplifying(1001), WARNING, "amplification up to 1e+03 (|gamma|/sqrt(var+0)) in 1 channel(s)"),
    fires("BN007", amplifying(-1001), WARNING, "amplification up to 1e+03"),
    fires("BN007", layer(gamma=ONES, var=TINY, epsilon=1e-9), WARNING, "up to 9.53e+03 (|gamma|/sqrt(var+1e-09))"),
    fires("BN007", layer(gamma=None, var=TINY, epsilon=1e-9), WARNING, "up to 9.53e+03"),  # no gamma: 1
    silent("BN007", layer(gamma=ONES, var=TINY), "default_epsilon 1e-3: a factor of 31.6"),
    silent("BN007", layer(gamma=ONES, var=TINY, epsilon=1e-9), "a larger limit", amplification=1e5),
    silent("BN007", layer(gamma=[1.0] * 8, var=TINY, epsilon=1e-9), "shapes disagree: BN011's"),
    # BN008 outlier-stats: |mean| > mean_bound (1e4), var > variance_bound (1e6), largest/median var > 1e6
    silent("BN008", layer(mean=f64(1e4, 0, 0, 0)), "|mean| at mean_bound"),
    fires("BN008", layer(mean=f64(-10001, 0, 0, 0)), WARNING, "|moving_mean| up to 1e+04"),
    silent("BN008", layer(var=f64(1e6, 1e6, 1e6, 1e6)), "var at variance_bound"),
    fires("BN008", layer(var=f64(1e6 + 1, 1e6, 1e6, 1e6)), WARNING, "moving_variance up to 1e+06"),
    silent("BN008", layer(var=f64(1e6, 1.001, 1.001, 1.001)), "ratio below variance_ratio"),
    silent("BN008", layer(var=f64(1e6, 1, 1, 1)), "ratio at variance_ratio"),
    fires("BN008", layer(var=f64(1e6, 0.999, 0.999, 0.999)), WARNING, "largest/median variance ratio 1e+06"),
    silent("BN008", layer(var=f64(1e3, 0, 0, 0)), "median 0: no ratio (BN005's zero variance)"),
    fires("BN008", layer(mean=[2e4, 0, 0, 0], var=[2e6] * 4), WARNING, "up to 2e+04; moving_variance up to 2e+06"),
    silent("BN008", layer(mean=[np.nan, 1e9, 0, 0], var=[np.nan, 1e9, 1, 1]), "non-finite: BN004's"),
    # BN009 duplicate-stats, on every layer of a model
    fires("BN009", [layer("bn1"), layer("bn2", gamma=ONES), layer("bn3")], WARNING,
          *["moving statistics bit-identical to those of layer bn1"] * 2),
    silent("BN009", [fresh("bn1"), fresh("bn2")], "both at the initial 0/1: fresh, not copied"),
    silent("BN009", [layer("bn1"), layer("bn2", mean=MEAN_B)], "one bit apart"),
    silent("BN009", [layer("bn1"), layer("bn2", mean=f64(*MEAN), var=f64(*VAR))], "the same numbers in another dtype"),
    silent("BN009", [layer(n, gamma=[1.1], beta=[0.1], mean=[0.5], var=[0.8]) for n in ("bn1", "bn2")], "one channel"),
    # BN010 dead-channels: at least dead_share (0.5) of |gamma| <= dead_gamma (1e-3)
    fires("BN010", layer(gamma=f64(0, 0, 1, 1)), INFO, "2 of 4 channels have |gamma| <= 0.001"),
    silent("BN010", layer(gamma=f64(0, 1, 1, 1)), "a share of 0.25"),
    fires("BN010", layer(gamma=f64(0, 1, 1, 1)), INFO, "1 of 4 channels", dead_share=0.25),
    fires("BN010", layer(gamma=f64(1e-3, -1e-3, 1, 1)), INFO, "2 of 4 channels"),  # |gamma| at dead_gamma
    silent("BN010", layer(gamma=f64(1.0001e-3, -1e-3, 1, 1)), "|gamma| just above dead_gamma"),
    fires("BN010", layer(gamma=f64(0.2, -0.1, 1, 1)), INFO, "2 of 4 channels have |gamma| <= 0.2", dead_gamma=0.2),
    fires("BN010", layer(gamma=f64(0, 0, 0, np.nan)), INFO, "3 of 4 channels"),
    silent("BN010", layer(gamma=f64(np.nan, np.nan, 1, 1)), "NaN is not dead (BN004's)"),
    silent("BN010", layer(gamma=None), "no gamma"),
    # BN011 inconsistent-layer
    fires("BN011", layer(var=[1.0] * 8), ERROR, "shapes differ: gamma [4], beta [4], moving_mean [4], moving_variance"
          " [8]"),
    fires("BN011", layer(gamma=np.float16(GAMMA), mean=None), ERROR,
          "dtypes differ: gamma float16, beta float32, moving_variance float32"),
    fires("BN011", layer(beta=f64(1, 2)), ERROR, "shapes differ: gamma [4], beta [2]",
          "dtypes differ: gamma float32, beta float64"),
    silent("BN011", layer(gamma=None, beta=None), "the variables present agree"),
    # BN012 stats-have-optimizer-slots
    fires("BN012", layer(slots={"moving_mean": ["v", "m"]}), WARNING, "slots on moving statistics (moving_mean: m, v)"),
    fires("BN012", layer(slots={"moving_mean": ["m"], "moving_variance": ["mo"]}), WARNING, "m; moving_variance: mo)"),
    fires("BN012", layer(slots={"moving_variance": ["ExponentialMovingAverage", "m"]}), WARNING,
          "statistics (moving_variance: m)"),
    silent("BN012", EMA, "an EMA shadow, not an optimizer"),
    silent("BN012", layer(slots={"gamma": ["m"], "beta": ["m"]}), "slots on gamma/beta"),
    # BN013 exported-in-training-mode
    fires("BN013", layer(training_mode=True), ERROR, "exported in training mode: the node normalises with batch stat"),
    fires("BN013", layer(training_in=(BatchStatistics("how", "signature 's'", "W"),)), ERROR, "at inference: signatu"),
    fires("BN013", layer(mean=None, var=None, training_in=(BatchStatistics("x"),)), ERROR, "; no moving statistics s"),
    silent("BN013", layer(), "an inference node"),
    # BN101-BN105: the training graph. BN101-BN103 are a step lower when the statistics moved, not by gradient
    fires("BN101", STALE, ERROR, "no moving-average update op for moving_mean or moving_variance: the layer was built "
          "in inference mode", graph=NO_OPS),
    fires("BN101", STALE, ERROR, "no moving-average update op for moving_variance:", graph=NO_VAR_OPS),
    fires("BN101", layer(), WARNING, MOVED, graph=NO_OPS),
    fires("BN101", layer(mean=ZEROS), WARNING, MOVED, graph=NO_OPS),  # one statistic moved is enough
    fires("BN101", EMA, WARNING, MOVED, graph=NO_OPS),
    fires("BN101", SLOTTED, ERROR, "built in inference mode", graph=NO_OPS),  # moved by an optimizer
    fires("BN101", layer(), ERROR, "built in inference mode", graph=graph(update_ops=(), trainable=True)),
    silent("BN101", STALE, "not a training graph", graph=graph(train_ops=(), update_ops=())),
    fires("BN102", STALE, ERROR, "train op `train_op` does not depend on `bn/AssignMovingAvg` (+1 more): they are in "
          "UPDATE_OPS, but the train op was not built under control_dependencies(UPDATE_OPS)", graph=NOT_RUN),
    fires("BN102", STALE, ERROR, "they are not in UPDATE_OPS either (BN103)", graph=UNCOLLECTED),
    fires("BN102", layer(), WARNING, MOVED, graph=NOT_RUN),
    fires("BN102", SLOTTED, ERROR, "does not depend on", graph=NOT_RUN),
    fires("BN103", STALE, WARNING, "update ops `bn/AssignMovingAvg` (+1 more) are not in UPDATE_OPS (a tf.keras layer",
          graph=UNCOLLECTED),
    fires("BN103", layer(), INFO, MOVED, graph=UNCOLLECTED),
    silent("BN103", STALE, "not collected but run (slim)", graph=graph(updates_collected=False)),
    fires("BN104", layer(), ERROR, "the graph's Saver (save/SaveV2) does not save moving_variance",
          graph=graph(var={"saved": False})),
    fires("BN104", layer(), ERROR, "does not save moving_mean and moving_variance",
          graph=graph(train_ops=(), saved=False)),  # a graph without a train op too
    silent("BN104", layer(), "the graph has no Saver", graph=graph(saver=None, saved=None)),
    fires("BN105", layer(), WARNING, "moving_mean and moving_variance in the trainable_variables", graph=TRAINABLE),
    *(silent(code, STALE, "another layer's graph", graph=graph("other", update_ops=(), saved=False, trainable=True))
      for code in ("BN101", "BN102", "BN103", "BN104", "BN105")),
    # BN201 stats-frozen-while-trained
    fires("BN201", to(gamma=GAMMA_B), ERROR, "gamma by up to 0.1 (8.3%) changed, but moving_mean and moving_variance "
          "are identical: the BN update ops did not run between A and B"),
    fires("BN201", diff((layer(), layer(gamma=GAMMA_B, mean=MEAN_B)), atol=1e-6), ERROR, "unchanged within tolerance"),
    silent("BN201", to(gamma=GAMMA_B, mean=MEAN_B), "a statistic moved beyond atol 0"),
    silent("BN201", diff((layer(gamma=None), layer())), "gamma only in B: BN203's, not training"),
    silent("BN201", to(gamma=GAMMA_B), "declared frozen: BN202's", frozen=("b*",)),
    # BN202 frozen-layer-drift
    fires("BN202", to(gamma=GAMMA_B), ERROR, "declared frozen (--frozen 'b*') but gamma by up to 0.1 (8.3%) changed "
          "between A and B: the optimizer still trained it", frozen=("x", "b*")),
    fires("BN202", to(mean=MEAN_B), ERROR, "changed between A and B: gamma/beta did not, so the layer still ran in "
          "training mode", frozen=("bn",)),
    fires("BN202", to(var=None), ERROR, "moving_variance (removed) changed between A and B: the layer's variables "
          "differ between the files (see BN203)", frozen=("bn",)),
    silent("BN202", to(gamma=GAMMA_B), "globs are case-sensitive", frozen=("BN*",)),
    silent("BN202", to(gamma=GAMMA_B), "nothing declared frozen"),
    silent("BN202", to(), "frozen and unchanged", frozen=("bn",)),
    # BN203 layer-set-changed
    fires("BN203", diff(only_a=["old"], only_b=["new"]), WARNING, "BN layer in A is not in B (removed or renamed)",
          "BN layer in B is not in A (added or renamed)"),
    fires("BN203", to(mean=None, var=None), WARNING, "moving_mean, moving_variance missing in B"),
    fires("BN203", diff((layer(beta=None), layer(gamma=None, var=[1.0] * 8))), WARNING,
          "beta added in B; gamma missing in B; moving_variance (reshaped [4] -> [8])"),
    silent("BN203", to(gamma=GAMMA_B, mean=MEAN[::-1]), "values changed, not the layer set"),
    silent("BN203", to(gamma=None, unmapped=("gamma",)), "B cannot name its gamma (.weights.h5): a note"),
    # BN204 stats-shift: max |B - A| / min(max |A|, max |B|) > stats_shift (1.0)
    silent("BN204", shift(ONES, [1.5] * 4), "shift 0.5"),
    silent("BN204", shift(ONES, [2.0] * 4), "shift 1.0, at stats_shift"),
    fires("BN204", shift(ONES, [2.5] * 4), WARNING, "moving_mean by up to 1.5 (150.0%): more than the stats_shift "
          "threshold 1 allows"),
    fires("BN204", shift([2.0] * 4, [0.5] * 4), WARNING, "moving_mean by up to 1.5 (300.0%)"),  # fell below half
    silent("BN204", shift(ZEROS, MEAN), "from 0: no relative change to judge"),
    fires("BN204", scaled(3.0), WARNING, "moving_variance by up to 8 (200.0%), x3 in every channel"),
    fires("BN204", scaled(1.7), WARNING, "x1.7 in every channel", stats_shift=0.1),
    *(silent("BN204", scaled(f), f"x{f:g}: Bessel's correction", stats_shift=0.1) for f in (1.5, 2.0, 0.5)),
]  # fmt: skip


@pytest.mark.parametrize(("code", "subject", "context", "expected"), CASES)
def test_rule(code, subject, context, expected):
    found = run(code, subject, **context)
    assert [(f.code, f.severity) for f in found] == [(code, severity) for severity, _ in expected], found
    for finding, (_, words) in zip(found, expected, strict=True):
        assert words in finding.message


def test_every_rule_has_cases_that_fire_and_cases_that_do_not():
    cases = [(param.values[0], bool(param.values[3])) for param in CASES]
    assert {code for code, _ in cases} == set(RULES)
    assert {code for code, fire in cases if fire} == set(RULES)
    assert {code for code, fire in cases if not fire} == set(RULES)


def test_a_healthy_trained_layer_fires_no_rule():
    assert fired(layer(), step=1000, evidence=TRAINED) == {}
    assert [f for code in RULES if code.startswith("BN1") for f in run(code, layer(), graph=graph())] == []
    assert [f for code in RULES if code.startswith("BN2") for f in run(code, diff((layer(), layer())))] == []


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("role", ["gamma", "beta", "mean", "var"])
def test_non_finite_values_are_bn004s(role, bad):
    healthy = HEALTHY[role]
    found = fired(layer(**{role: first(healthy, bad)}), step=1000, evidence=TRAINED)
    negative_variance = role == "var" and bad < 0  # -Inf is a negative variance too
    assert set(found) == ({"BN004", "BN005"} if negative_variance else {"BN004"})
    assert [f.message.endswith(": 1 of 4") for f in found["BN004"]] == [True]


def test_bn007_an_infinite_factor_is_extreme():
    assert one("BN007", layer(gamma=ONES, var=[0, 1, 1, 1], epsilon=0.0)).severity is WARNING


# BN006 stats-barely-updated: within barely_tolerance (0.01) of 0/1; 10x that when m**n > barely_remaining (0.25)


@pytest.mark.parametrize(("close", "fires"), [(0.0099, True), (0.01, True), (0.0101, False)])
def test_bn006_tolerance_boundary(close, fires):
    found = run("BN006", layer(mean=f64(close, 0, 0, 0), var=f64(1, 1, 1, 1)), evidence=TRAINED)
    expected = f"moving statistics within {close:.2g} of their initial 0/1 while gamma/beta trained"
    assert [(f.severity, f.message) for f in found] == ([(WARNING, expected)] if fires else [])


@pytest.mark.parametrize(
    ("momentum", "step", "close", "estimate"),
    [
        (0.5, 1, 0.05, "; after 1 steps with momentum 0.5 (recorded in the file) 50% of it would remain"),
        (0.5, 1, 0.1, "; after 1 steps with momentum 0.5"),  # the wide tolerance, at its bound
        (0.5, 1, 0.1001, None),
        (0.5, 2, 0.05, None),  # m**n = 0.25: at barely_remaining, the narrow tolerance
        (0.5, 3, 0.05, None),
        (None, 1, 0.05, None),  # m**n is trusted only when the file records the momentum
        (None, 10, 0.005, "after 10 steps with momentum 0.99 (framework default; the file does not record it) 90%"),
        (0.99, 1000, 0.005, "after 1000 steps with momentum 0.99 (recorded in the file) 0% of it would remain"),
    ],
)
def test_bn006_share_of_the_initial_values_expected_to_remain(momentum, step, close, estimate):
    found = run("BN006", layer(mean=f64(close, 0, 0, 0), var=ONES, momentum=momentum), step=step)
    assert [(f.severity, estimate in f.message) for f in found] == ([(WARNING, True)] if estimate else [])


@pytest.mark.parametrize(("momentum", "step"), [(5.0, 10**6), (0.99, -(10**18))])
def test_bn006_no_estimate_from_a_momentum_or_count_no_framework_writes(momentum, step):
    """A damaged file's momentum or step count gives no estimate (5.0**1e6 would overflow), the finding stays."""
    (finding,) = run("BN006", layer(mean=f64(0.005, 0, 0, 0), var=ONES, momentum=momentum), step=step)
    assert finding.severity is WARNING and "would remain" not in finding.message


def test_bn006_frozen_is_info_without_the_step_estimate():
    near = f64(0.05, 0, 0, 0)  # within the tolerance m**n widens: 0.99**10 of 0/1 should remain
    assert run("BN006", layer(mean=near, var=ONES, momentum=0.99), step=10)
    assert run("BN006", layer(mean=near, var=ONES, momentum=0.99, trainable=False), step=10) == []
    finding = one("BN006", layer(mean=first(ZEROS, 0.005), var=ONES, momentum=0.99, trainable=False), step=10)
    assert finding.severity is INFO and FROZEN in finding.message and "steps" not in finding.message


@pytest.mark.parametrize(
    ("bn", "evidence"),
    [
        (fresh(), TRAINED),  # at 0/1: BN002/BN003's
        (fresh(mean=first(ZEROS, 0.005)), TRAINED),  # gamma/beta at 1/0: nothing says the layer trained
        (layer(mean=[0.005, np.nan, 0, 0], var=ONES), TRAINED),  # NaN: BN004's
        (layer(gamma=None, beta=None, mean=first(ZEROS, 0.005), var=ONES), None),  # nothing says the model trained
    ],
)
def test_bn006_silent(bn, evidence):
    assert run("BN006", bn, step=10, evidence=evidence) == []


def test_bn006_statistics_alone_near_initial_in_a_trained_model():
    assert one("BN006", layer(gamma=None, beta=None, mean=first(ZEROS, 0.005), var=ONES), evidence=TRAINED)


def test_bn006_on_statistics_alone_says_what_trained():
    message = one("BN006", layer(gamma=None, beta=None, mean=first(ZEROS, 0.005), var=ONES), evidence=TRAINED).message
    assert "gamma/beta trained" not in message and "the model trained (global_step = 100)" in message


# The fix a finding carries, as the file's framework spells it

FIX_CASES = [
    ("BN001", layer(var=None), {}, Framework.TF1, "Saver(tf.global_variables())"),
    ("BN001", layer(var=None), {}, Framework.ONNX, "running_mean, running_var"),
    ("BN002", fresh(gamma=GAMMA), {}, Framework.KERAS, "self(x, training=True)"),
    ("BN002", fresh(gamma=GAMMA), {}, Framework.TF2, "GradientTape"),
    ("BN006", NEAR, {}, Framework.ONNX, "PyTorch"),
    ("BN012", SLOTTED, {}, Framework.TF2, "model.trainable_variables"),
    ("BN013", layer(training_mode=True), {}, Framework.ONNX, "model.eval() before torch.onnx.export"),
    ("BN201", diff((layer(), layer(gamma=ONES))), {}, Framework.TF1, "control_dependencies(UPDATE_OPS)"),
    ("BN202", diff((layer(), layer(gamma=ONES))), {"frozen": ("bn",)}, Framework.KERAS, "base(x, training=False)"),
]


@pytest.mark.parametrize(("code", "subject", "context", "framework", "words"), FIX_CASES)
def test_the_fix_is_spelled_for_the_framework(code, subject, context, framework, words):
    assert words in one(code, subject, framework=framework, **context).fix
    assert words not in one(code, subject, **context).fix  # no framework known: the generic fix


@pytest.mark.parametrize(("code", "subject"), [("BN012", SLOTTED), ("BN004", layer(var=[np.nan] * 4))])
def test_a_framework_without_a_spelling_of_its_own_gets_the_generic_fix(code, subject):
    assert one(code, subject, framework=Framework.ONNX).fix == one(code, subject).fix == RULES[code].fix != ""


# Properties


def floats(n: int, low: float, high: float) -> st.SearchStrategy[np.ndarray]:
    return hnp.arrays(np.float32, n, elements=st.floats(low, high, width=32))


@settings(max_examples=50, deadline=None)
@given(st.data())
def test_a_healthy_layer_whose_statistics_moved_gets_no_error(data):
    n = data.draw(st.integers(1, 16))
    bn = layer(
        gamma=data.draw(floats(n, -3, 3)),
        beta=data.draw(floats(n, -3, 3)),
        mean=data.draw(floats(n, -100, 100)),
        var=data.draw(floats(n, 2**-10, 1e4)),
        momentum=data.draw(st.none() | st.floats(0, 1)),
    )
    assume(not bn.statistics_at_initial())
    found = fired(bn, step=data.draw(st.none() | st.integers(1, 10**6)), evidence=TRAINED)
    assert [f for findings in found.values() for f in findings if f.severity is ERROR] == []


@settings(max_examples=50, deadline=None)
@given(st.lists(hnp.arrays(np.float32, 3, elements=st.floats(width=32)), min_size=4, max_size=4))
def test_any_float32_values_are_judged_and_bn004_fires_exactly_on_non_finite_ones(values):
    found = fired(layer(gamma=values[0], beta=values[1], mean=values[2], var=values[3]), step=10, evidence=TRAINED)
    assert ("BN004" in found) == (not all(np.isfinite(v).all() for v in values))


def test_bn013_gives_the_fix_of_the_graph_s_writer() -> None:
    """The writer's fix, carried by the hint, wins over the rule's fix for the framework."""
    where = BatchStatistics("x", "signature 'serving_default'", "tf_keras", "save without it")
    (finding,) = run("BN013", layer(training_in=(where,)), framework=Framework.TF2)
    assert (
        finding.message
        == "normalises with batch statistics at inference: signature 'serving_default' (written by tf_keras): x"
    )
    assert finding.fix == "save without it"
    (plain,) = run("BN013", layer(training_mode=True), framework=Framework.TF2)
    assert plain.fix == RULES["BN013"].fixes[Framework.TF2]
