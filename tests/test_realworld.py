"""The TensorFlow checkpoints of ../shared/realworld (see its MANIFEST.md), read as a user would."""

from __future__ import annotations

import json

import bncheck

from .conftest import realworld, run_cli


def test_tf2_keras_checkpoint_names_layers_from_the_object_graph() -> None:
    report = bncheck.inspect(str(realworld("tf2_ckpt_emg_cbam")))
    assert [layer.name for layer in report.layers] == ["batch_normalization", "batch_normalization_1"]
    assert [layer.channels for layer in report.layers] == [48, 96]
    assert not report.errors and not {"BN001", "BN002", "BN003"} & {f.code for f in report.findings}
    # Adam's m/v ("Adam/m/batch_normalization/gamma") are slots of gamma, not layers of their own
    assert {"Adam/m", "Adam/v"} <= set(report.layers[0].variables["gamma"].slots)


def test_anonymous_savedmodel_keys_resolve_to_keras_layer_names() -> None:
    report = bncheck.inspect(str(realworld("tm_savedmodel_salad/model.savedmodel")))
    assert len(report.layers) == 52
    assert sum(layer.channels for layer in report.layers) == 7040
    assert {"bn_Conv1", "Conv_1_bn", "expanded_conv_depthwise_BN"} <= {layer.name for layer in report.layers}
    assert not {"BN002", "BN003"} & {f.code for f in report.findings}


def test_index_only_checkpoint_lists_layers_and_names_the_missing_data_file() -> None:
    result = run_cli("inspect", "--format", "json", str(realworld("srgan_index_only/checkpoint")))
    assert result.returncode == 2
    (file,) = json.loads(result.stdout)["files"]
    assert len(file["layers"]) == 33
    assert "model.ckpt.data-00000-of-00001: data file missing" in result.stderr
    assert "Traceback" not in result.stderr


def test_slim_scopes_in_an_index_only_checkpoint() -> None:
    report = bncheck.inspect(str(realworld("svhn_slim_index_meta/checkpoint")))
    assert [layer.name for layer in report.layers] == ["BatchNorm", "BatchNorm_1", "BatchNorm_2"]
    assert report.errors  # the data shard was never committed


def test_tf_keras_and_tf_layers_scopes_in_one_graph() -> None:
    report = bncheck.inspect(str(realworld("denoise_bn_bug_index_meta/models/trained/mmd_gan.ckpt")))
    names = [layer.name for layer in report.layers]
    assert len(names) == 27
    assert sum(n.startswith("generator/batch_normalization_v1") for n in names) == 15
    assert sum(n.startswith("d_encoder/") for n in names) == 6
    dncnn = bncheck.inspect(str(realworld("denoise_bn_bug_index_meta/models/trained/dncnn.ckpt.index")))
    assert len(dncnn.layers) == 15


def test_gamma_beta_without_stats_under_plain_scopes_is_noted_not_judged() -> None:
    """Set 8: BN computed with tf.nn.moments only; the file cannot tell it is BN."""
    report = bncheck.inspect(str(realworld("resnet110_cifar_no_moving_stats/logs_test_110")))
    assert report.layers == [] and report.findings == []
    assert any(note.startswith("109 scope(s) hold gamma/beta") for note in report.notes)
    # Momentum slots and loss EMAs are not taken for anything
    assert "Momentum" not in " ".join(report.notes)
