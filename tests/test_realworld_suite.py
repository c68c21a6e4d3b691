"""Every model of ../shared/realworld, inspected as a user would: its BN layer count, the codes of
every layer and the exit status that its MANIFEST.md implies.

A healthy model with its values is exit 0 with no code on any layer; a model whose data shard was
never committed is exit 2 (its names, shapes and graph are still judged); the denoise graphs show
update ops that no train op runs (MANIFEST set 11).
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from .conftest import realworld, run_cli

DENOISE = "denoise_bn_bug_index_meta/models/trained"


def none(layer: str) -> set[str]:
    return set()


def keras_updates_not_wired(layer: str) -> set[str]:
    return {"BN102", "BN103"}


def mmd_gan(layer: str) -> set[str]:
    """tf.keras layers in the generator (updates never run), tf.layers without training= elsewhere."""
    return {"BN102", "BN103"} if layer.startswith("generator/") else {"BN101"}


# path -> (BN layers, codes of a layer by its name, exit status)
MODELS: dict[str, tuple[int, Callable[[str], set[str]], int]] = {
    "bn_r2rt_mnist": (2, none, 0),  # set 1: anonymous Variable_N, found by graph structure
    "keras_h5_cifar10_denisko/cifar10_model.h5": (7, none, 0),  # set 2: dead channels are not the bug
    "keras3_cifar10_mlops/cifar10.keras": (3, none, 0),  # set 3
    "keras_h5_face_mini_xception/fer2013_mini_XCEPTION.00-0.47.hdf5": (14, none, 0),  # set 4
    "keras_h5_face_mini_xception/fer2013_mini_XCEPTION.102-0.66.hdf5": (14, none, 0),
    "keras_h5_face_mini_xception/gender_mini_XCEPTION.21-0.95.hdf5": (14, none, 0),
    "keras_h5_face_mini_xception/tiny_XCEPTION_KDEF.hdf5": (14, none, 0),
    "frozen_pb_mobilenet025_retrained/retrained_graph.pb": (27, none, 0),  # set 5
    "tf2_ckpt_emg_cbam": (2, none, 0),  # set 6: extreme but real variance range
    "tm_savedmodel_salad/model.savedmodel": (52, none, 0),  # set 7: names from the object graph
    "resnet110_cifar_no_moving_stats/logs_test_110": (0, none, 2),  # set 8: noted, not judged; index only
    "srgan_index_only/checkpoint": (33, none, 2),  # set 9: index only
    "svhn_slim_index_meta/checkpoint": (3, none, 2),  # set 10: index + meta, updates run in place
    f"{DENOISE}/dncnn.ckpt": (15, keras_updates_not_wired, 2),  # set 11
    f"{DENOISE}/mmd_gan.ckpt": (27, mmd_gan, 2),
    "tf14_slim_stoch_depth/20171218-004853": (19, none, 0),  # set 12: real TF 1.4.1 values and graph
}


@pytest.mark.parametrize("relative", list(MODELS))
def test_realworld_model(relative: str) -> None:
    count, codes, status = MODELS[relative]
    result = run_cli("inspect", "--format", "json", str(realworld(relative)))
    assert "Traceback" not in result.stderr
    assert result.returncode == status, result.stderr
    (file,) = json.loads(result.stdout)["files"]
    assert len(file["layers"]) == count
    assert {layer["name"]: set(layer["codes"]) for layer in file["layers"]} == {
        layer["name"]: codes(layer["name"]) for layer in file["layers"]
    }


def test_the_whole_corpus_in_one_scan() -> None:
    """A directory scan finds each model once, both denoise models included, and exits 2 (index-only sets)."""
    result = run_cli("inspect", "--format", "json", str(realworld("")))
    assert result.returncode == 2
    files = json.loads(result.stdout)["files"]
    layers = {layer["name"] for file in files if "dncnn" in (file["file"] or "") for layer in file["layers"]}
    assert len(layers) == 15
    assert sum(len(file["layers"]) for file in files) == sum(count for count, _, _ in MODELS.values())
