"""The native reader against TensorFlow's own: names, shapes, dtypes, bit-identical values."""

from __future__ import annotations

import os

import numpy as np
import pytest

from bncheck.readers.bundle import Bundle

from .conftest import FIXTURES, SCENARIOS, prefix_of, realworld

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import tensorflow as tf

REALWORLD_WITH_DATA = [
    "bn_r2rt_mnist/temp-bn-save",
    "tf2_ckpt_emg_cbam/model.ckpt",
    "tm_savedmodel_salad/model.savedmodel/variables/variables",
    "tf14_slim_stoch_depth/20171218-004853/model.ckpt",
]
# Values for real TF 1.x graphs, written by fixtures/make_realworld_fixtures.py
PAIRED = sorted(str(p.relative_to(FIXTURES))[: -len(".index")] for p in FIXTURES.glob("realworld/*/*/*.index"))


def _same_bits(ours: np.ndarray, theirs: np.ndarray) -> bool:
    if ours.dtype == object:
        theirs = np.asarray(theirs, dtype=object)
        return ours.shape == theirs.shape and list(ours.ravel()) == list(theirs.ravel())
    theirs = np.asarray(theirs)
    if str(theirs.dtype) == "bfloat16":  # we widen bfloat16 to float32, which is exact
        theirs = theirs.astype(np.float32)
    return ours.dtype == theirs.dtype and ours.shape == theirs.shape and ours.tobytes() == theirs.tobytes()


def _compare(prefix: str) -> int:
    reader = tf.train.load_checkpoint(prefix)
    shapes = reader.get_variable_to_shape_map()
    dtypes = reader.get_variable_to_dtype_map()
    bundle = Bundle(prefix)
    assert set(bundle.names()) == set(shapes)
    for name in shapes:
        info = bundle.info(name)
        assert list(info.shape) == list(shapes[name]), name
        assert info.dtype == dtypes[name].name, name
        assert _same_bits(bundle.read(name), reader.get_tensor(name)), name
    return len(shapes)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_fixture_matches_tensorflow(scenario: str) -> None:
    assert _compare(prefix_of(FIXTURES / scenario)) > 0


@pytest.mark.parametrize("relative", REALWORLD_WITH_DATA)
def test_realworld_matches_tensorflow(relative: str) -> None:
    prefix = realworld(relative + ".index")
    assert _compare(str(prefix)[: -len(".index")]) > 0


@pytest.mark.parametrize("relative", PAIRED)
def test_values_for_realworld_graphs_match_tensorflow(relative: str) -> None:
    assert _compare(str(FIXTURES / relative)) > 0


def test_fixture_set_covers_the_formats_the_issue_names() -> None:
    """The oracle comparison above is only as good as the fixtures it runs on."""
    typed = Bundle(prefix_of(FIXTURES / "tf1_dtypes"))
    dtypes = {typed.info(name).dtype for name in typed.names()}
    assert {"float16", "bfloat16", "float32", "float64", "int32", "int64", "bool", "string"} <= dtypes
    assert Bundle(prefix_of(FIXTURES / "tf1_two_shards")).num_shards >= 2
    partitioned = Bundle(prefix_of(FIXTURES / "tf1_partitioned"))
    assert any(partitioned.info(k).partitioned for k in partitioned.names())
    assert "_CHECKPOINTABLE_OBJECT_GRAPH" in Bundle(prefix_of(FIXTURES / "tf2_fit"))


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_reading_many_at_once_gives_what_reading_one_gives(scenario: str) -> None:
    """read_many (adjacent tensors in one pread) against read, tensor by tensor: every dtype, shards, slices."""
    bundle = Bundle(prefix_of(FIXTURES / scenario))
    names = bundle.names()
    for name, value in zip(names, bundle.read_many(names), strict=True):
        assert _same_bits(value, bundle.read(name)), name
