"""Rules on exported models: BN013, a BN node that normalises with batch statistics at inference."""

from __future__ import annotations

from collections.abc import Iterator

from ..facts import Framework
from ..findings import Severity
from ..layers import BNLayer
from .rule import Context, Hit, LayerRule


def exported_in_training_mode(layer: BNLayer, context: Context) -> Iterator[Hit]:
    """An exported BatchNormalization node runs in training mode: ONNX ``training_mode=1``, or
    a node with the running-statistics outputs (running_mean, running_var) that only
    training mode produces; in TensorFlow, a SavedModel signature or a frozen graph whose
    ``FusedBatchNorm*`` has ``is_training=true``, that normalises with the moments of the batch,
    or that assigns the moving statistics (training functions, with gradients or an optimizer,
    are not judged).

    Why it matters: in training mode the node normalises every batch with that batch's own
    mean and variance and ignores the saved moving statistics. An inference runtime then
    gives outputs that depend on the other samples of the batch, and wrong results for a
    batch of one, although the saved statistics may be perfect.

    Fix: export from inference mode. PyTorch: ``model.eval()`` before
    ``torch.onnx.export(model, ...)`` and no ``training=torch.onnx.TrainingMode.TRAINING``
    (or ``PRESERVE`` on a model left in train mode). Keras/TF2 via tf2onnx: export the
    inference function (``model(x, training=False)``); TF1: freeze the graph built with
    ``training=False`` (``is_training=False`` for slim) or a ``placeholder_with_default(False)``
    switch. SavedModels: Keras 3 ``model.export()``; a ``tf.function`` signature calling the model
    with ``training=False``; tf_keras: no layer called with ``training=True`` (nor the learning
    phase 1) in the model saved. The message names the signature, its writer and that writer's fix.

    Silence: ``--ignore BN013`` (e.g. a model exported for on-device training).
    """
    hints = layer.hints
    if hints.training_in:
        absent = "" if {"moving_mean", "moving_variance"} & layer.variables.keys() else "; no moving statistics saved"
        where = "; ".join(map(str, hints.training_in))
        fix = next((b.fix for b in hints.training_in if b.fix), None)
        message = f"normalises with batch statistics at inference: {where}{absent}"
        yield (layer.name, message, None, fix) if fix else (layer.name, message)
    elif layer.hints.training_mode:
        yield layer.name, "exported in training mode: the node normalises with batch statistics, not the saved ones"


BN013 = LayerRule(
    code="BN013",
    name="exported-in-training-mode",
    severity=Severity.ERROR,
    summary="a BN node of an exported model computes batch statistics (exported in training mode)",
    fix="export in inference mode",
    fixes={
        Framework.ONNX: "export in inference mode (PyTorch: model.eval() before torch.onnx.export and the default "
        "TrainingMode.EVAL; tf2onnx: the inference function)",
        Framework.TF1: "build the exported graph with training=False (slim: is_training=False) before freezing",
        Framework.TF2: "export a function that calls the model with training=False",
        Framework.KERAS: "export with model.export() or a tf.function calling the model with training=False",
        Framework.TORCH: "call model.eval() before exporting or tracing",
    },
    model_wide="every BN layer is normalised with batch statistics at inference (each finding says where): the model "
    "was exported in training mode",
    check=exported_in_training_mode,
)
