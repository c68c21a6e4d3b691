"""Small TensorFlow graphs built in code, node for node as the TensorFlow versions named in each
builder wrote them (op types, input order, names, attrs), for unit tests of the graph reader.

The TF 1.4 and TF 1.13 shapes were checked against the real ``.meta`` files of
../shared/realworld (svhn_slim_index_meta, denoise_bn_bug_index_meta); the others follow the
TensorFlow source of their version (``moving_averages.assign_moving_average`` and
``_zero_debias``, ``nn.batch_normalization``, ``layers.BatchNormalization.call`` with
``_smart_select``, ``contrib.layers.batch_norm``).
"""

from __future__ import annotations

from typing import Any

from bncheck.readers.proto import tf_subset_pb2 as pb

ROLES = ("gamma", "beta", "moving_mean", "moving_variance")


class Graph:
    """A MetaGraphDef under construction: ``node`` adds a node and returns its name."""

    def __init__(self) -> None:
        self.meta = pb.MetaGraphDef()
        self.meta.meta_info_def.tags.append("train")

    @property
    def graph_def(self) -> Any:
        return self.meta.graph_def

    def node(self, name: str, op: str, *inputs: str, **attrs: Any) -> str:
        node = self.graph_def.node.add(name=name, op=op)
        node.input.extend(inputs)
        for key, value in attrs.items():
            if isinstance(value, bool):
                node.attr[key].b = value
            elif isinstance(value, float):
                node.attr[key].f = value
            else:
                node.attr[key].s = str(value).encode()
        return name

    def const(self, name: str, value: float | None = None, *inputs: str) -> str:
        """A float constant: a scalar, or (value None) an empty one of shape [0]."""
        self.node(name, "Const", *inputs)
        tensor = self.graph_def.node[-1].attr["value"].tensor
        tensor.dtype = pb.DT_FLOAT
        if value is None:
            tensor.tensor_shape.dim.add(size=0)
        else:
            tensor.float_val.append(value)
        return name

    def ref_variable(self, name: str) -> str:
        """A TF1 reference variable and its ``/read`` Identity; returns the read."""
        self.node(name, "VariableV2")
        return self.node(f"{name}/read", "Identity", name)

    def resource_variable(self, name: str) -> str:
        """A resource variable (``VarHandleOp``, as tf.keras in TF 1.13 and later)."""
        return self.node(name, "VarHandleOp")

    def collect(self, key: str, *names: str) -> None:
        self.meta.collection_def[key].node_list.value.extend(names)

    def bn_ref_variables(self, scope: str) -> dict[str, str]:
        return {role: self.ref_variable(f"{scope}/{role}") for role in ROLES}

    def moving_average(self, scope: str, variable: str, read: str, value: str, decay: str) -> str:
        """``assign_moving_average(variable, value, decay, zero_debias=False)``:
        ``AssignSub(variable, (variable - value) * decay)``; ``decay`` is already 1 - momentum."""
        sub = self.node(f"{scope}/sub", "Sub", read, value)
        mul = self.node(f"{scope}/mul", "Mul", sub, decay)
        return self.node(scope, "AssignSub", variable, mul)

    def momentum_cond(self, scope: str, predicate: str, momentum: float) -> str:
        """A TF1 ``cond(predicate, lambda: momentum, lambda: 1.0)`` of constants; returns its Merge."""
        self.node(f"{scope}/Switch", "Switch", predicate, predicate)
        self.node(f"{scope}/switch_t", "Identity", f"{scope}/Switch:1")
        self.node(f"{scope}/switch_f", "Identity", f"{scope}/Switch")
        self.const(f"{scope}/Const", momentum, f"^{scope}/switch_t")
        self.const(f"{scope}/Const_1", 1.0, f"^{scope}/switch_f")
        return self.node(f"{scope}/Merge", "Merge", f"{scope}/Const_1", f"{scope}/Const")

    def train_op(self, *depends_on: str, name: str = "Adam") -> str:
        """An optimizer step: apply ops on the trainable variables (data inputs ``depends_on``, the
        gradients), grouped in a NoOp that is the ``train_op`` collection."""
        applies = [
            self.node(f"{name}/update_{i}/ApplyAdam", "ApplyAdam", f"var_{i}", gradient)
            for i, gradient in enumerate(depends_on)
        ]
        self.node(name, "NoOp", *[f"^{a}" for a in applies])
        self.collect("train_op", name)
        return name


def slim_fused_tf14(op: str = "FusedBatchNorm", updates_wired: bool = True) -> Graph:
    """``tf.contrib.layers.batch_norm(x, is_training=True, fused=True)`` of TF 1.4 (svhn_slim_index_meta).

    The op takes **empty constants** as mean and variance; ``AssignMovingAvg`` averages its
    outputs 1 and 2 into the moving statistics (decay 0.9, stored as 1 - 0.9). The variables
    live under the variable scope ``BatchNorm``, the ops under the name scope
    ``net/batch_norm1/BatchNorm``. ``updates_wired``: ``updates_collections=None`` (the output
    Identity depends on the updates); else the default (updates in UPDATE_OPS, the train op built
    without control_dependencies).
    """
    g = Graph()
    x = g.node("net/pool1/MaxPool", "MaxPool")
    reads = g.bn_ref_variables("BatchNorm")
    s = "net/batch_norm1/BatchNorm"
    mean, variance = g.const(f"{s}/Const"), g.const(f"{s}/Const_1")
    fused = g.node(
        f"{s}/{op}", op, x, reads["gamma"], reads["beta"], mean, variance, epsilon=1.001e-5, is_training=True
    )
    decay = g.const(f"{s}/AssignMovingAvg/decay", 0.1)
    decay_1 = g.const(f"{s}/AssignMovingAvg_1/decay", 0.1)
    update = g.moving_average(
        f"{s}/AssignMovingAvg", "BatchNorm/moving_mean", reads["moving_mean"], f"{fused}:1", decay
    )
    update_1 = g.moving_average(
        f"{s}/AssignMovingAvg_1", "BatchNorm/moving_variance", reads["moving_variance"], f"{fused}:2", decay_1
    )
    if updates_wired:
        out = g.node(f"{s}/Identity", "Identity", fused, f"^{update}", f"^{update_1}")
    else:
        out = fused
        g.collect("update_ops", update, update_1)
    relu = g.node("net/Relu", "Relu", out)
    grad = g.node(f"gradients/{s}/{op}_grad/{op}Grad", f"{op}Grad", "gradients/ReluGrad", x, reads["gamma"])
    g.node("gradients/ReluGrad", "ReluGrad", "gradients/Fill", relu)
    g.train_op(f"{grad}:1", f"{grad}:2")
    return g


def keras_cond_tf113(momentum: float = 0.99) -> Graph:
    """``tf.keras.layers.BatchNormalization()(x)`` in a TF 1.13 graph (denoise_bn_bug_index_meta).

    Resource variables; ``training=None`` becomes a TF1 ``cond`` on the learning phase
    (``Switch``/``Merge``): the training branch's FusedBatchNorm takes empty constants, the
    inference branch's reads the moving statistics through ``Switch``; ``Merge_1``/``Merge_2``
    join the batch statistics that ``AssignMovingAvg`` averages with a momentum that is itself
    ``cond(learning_phase, momentum, 1.0)``. The updates stay in ``layer.updates``: not in
    UPDATE_OPS, not run by the train op.
    """
    g = Graph()
    s = "batch_normalization_v1"
    x = g.node("conv2d_1/BiasAdd", "BiasAdd")
    variables = {role: g.resource_variable(f"{s}/{role}") for role in ROLES}
    g.const(f"{s}/keras_learning_phase/input", 0.0)
    phase = g.node(f"{s}/keras_learning_phase", "PlaceholderWithDefault", f"{s}/keras_learning_phase/input")
    c = f"{s}/cond"
    g.node(f"{c}/Switch", "Switch", phase, phase)
    switch_t = g.node(f"{c}/switch_t", "Identity", f"{c}/Switch:1")
    pred = g.node(f"{c}/pred_id", "Identity", phase)

    def read(name: str, variable: str, branch: str) -> str:
        g.node(f"{name}/Switch", "Switch", variable, pred)
        return g.node(name, "ReadVariableOp", f"{name}/Switch{branch}")

    gamma, beta = (
        read(f"{c}/ReadVariableOp", variables["gamma"], ":1"),
        read(f"{c}/ReadVariableOp_1", variables["beta"], ":1"),
    )
    g.node(f"{c}/FusedBatchNorm/Switch", "Switch", x, pred)
    empty, empty_1 = g.const(f"{c}/Const", None, f"^{switch_t}"), g.const(f"{c}/Const_1", None, f"^{switch_t}")
    training = g.node(
        f"{c}/FusedBatchNorm", "FusedBatchNorm", f"{c}/FusedBatchNorm/Switch:1", gamma, beta, empty, empty_1,
        epsilon=1e-3, is_training=True,
    )  # fmt: skip
    gamma_2, beta_2 = (
        read(f"{c}/ReadVariableOp_2", variables["gamma"], ""),
        read(f"{c}/ReadVariableOp_3", variables["beta"], ""),
    )
    mean = read(f"{c}/FusedBatchNorm_1/ReadVariableOp", variables["moving_mean"], "")
    variance = read(f"{c}/FusedBatchNorm_1/ReadVariableOp_1", variables["moving_variance"], "")
    g.node(f"{c}/FusedBatchNorm_1/Switch", "Switch", x, pred)
    inference = g.node(
        f"{c}/FusedBatchNorm_1", "FusedBatchNorm", f"{c}/FusedBatchNorm_1/Switch", gamma_2, beta_2, mean, variance,
        epsilon=1e-3, is_training=False,
    )  # fmt: skip
    out = g.node(f"{c}/Merge", "Merge", inference, training)
    g.node(f"{c}/Merge_1", "Merge", f"{inference}:1", f"{training}:1")
    g.node(f"{c}/Merge_2", "Merge", f"{inference}:2", f"{training}:2")
    momentum_merge = g.momentum_cond(f"{s}/cond_1", phase, momentum)
    for suffix, role, merged in (("", "moving_mean", f"{c}/Merge_1"), ("_1", "moving_variance", f"{c}/Merge_2")):
        a = f"{s}/AssignMovingAvg{suffix}"
        one = g.const(f"{a}/sub/x", 1.0)
        decay = g.node(f"{a}/sub", "Sub", one, momentum_merge)
        current = g.node(f"{a}/ReadVariableOp", "ReadVariableOp", variables[role])
        delta = g.node(f"{a}/sub_1", "Sub", current, merged)
        mul = g.node(f"{a}/mul", "Mul", delta, decay)
        g.node(f"{a}/AssignSubVariableOp", "AssignSubVariableOp", variables[role], mul)
    relu = g.node("activation/Relu", "Relu", out)
    g.node("gradients/ReluGrad", "ReluGrad", "gradients/Fill", relu)
    g.train_op("gradients/ReluGrad")
    return g


def layers_unfused_tf10(momentum: float = 0.99) -> Graph:
    """``tf.layers.batch_normalization(x, training=is_training)`` of TF 1.0-1.2 (not fused), with a
    bool placeholder ``is_training``.

    ``nn.moments`` gives the batch mean and variance (``moments/normalize/mean``, ``/variance``);
    ``_smart_select`` is a TF1 ``cond``: ``Merge`` of the moving statistic (false branch, read
    through ``Switch``) and the batch statistic (true branch); the moving averages average the
    merged statistics, with ``decay = cond(training, momentum, 1.0)``, and are added to
    UPDATE_OPS; ``nn.batch_normalization`` computes under ``batchnorm/``. The train op is built
    under ``control_dependencies(UPDATE_OPS)``.
    """
    g = Graph()
    s = "batch_normalization"
    x = g.node("dense/BiasAdd", "BiasAdd")
    reads = g.bn_ref_variables(s)
    training = g.node("is_training", "Placeholder")
    normalize = f"{s}/moments/normalize"
    batch = {
        "moving_mean": g.node(f"{normalize}/mean", "Add", f"{normalize}/shifted_mean", f"{s}/moments/StopGradient"),
        "moving_variance": g.node(f"{normalize}/variance", "Sub", f"{normalize}/Mul_1", f"{normalize}/Square"),
    }
    g.node(f"{s}/moments/normalize/shifted_mean", "Mul", f"{s}/moments/sufficient_statistics/mean_ss", "divisor")
    g.node(f"{s}/moments/StopGradient", "StopGradient", f"{s}/moments/Mean")
    g.node(f"{s}/moments/Mean", "Mean", x)
    merged = {}
    for i, role in enumerate(("moving_mean", "moving_variance")):
        c = f"{s}/cond" + (f"_{i}" if i else "")
        g.node(f"{c}/Switch", "Switch", training, training)
        pred = g.node(f"{c}/pred_id", "Identity", training)
        g.node(f"{c}/Switch_1", "Switch", batch[role], pred)  # true: the batch statistic
        g.node(f"{c}/Switch_2", "Switch", reads[role], pred)  # false: the moving statistic
        merged[role] = g.node(f"{c}/Merge", "Merge", f"{c}/Switch_2", f"{c}/Switch_1:1")
    decay_merge = g.momentum_cond(f"{s}/cond_2", training, momentum)
    updates = []
    for suffix, role in (("", "moving_mean"), ("_1", "moving_variance")):
        a = f"{s}/AssignMovingAvg{suffix}"
        one = g.const(f"{a}/decay/x", 1.0)
        decay = g.node(f"{a}/decay", "Sub", one, decay_merge)
        updates.append(g.moving_average(a, f"{s}/{role}", reads[role], merged[role], decay))
    g.collect("update_ops", *updates)
    b = f"{s}/batchnorm"
    epsilon = g.const(f"{b}/add/y", 0.001)
    add = g.node(f"{b}/add", "Add", merged["moving_variance"], epsilon)
    rsqrt = g.node(f"{b}/Rsqrt", "Rsqrt", add)
    mul = g.node(f"{b}/mul", "Mul", rsqrt, reads["gamma"])
    mul_1 = g.node(f"{b}/mul_1", "Mul", x, mul)
    mul_2 = g.node(f"{b}/mul_2", "Mul", merged["moving_mean"], mul)
    sub = g.node(f"{b}/sub", "Sub", reads["beta"], mul_2)
    out = g.node(f"{b}/add_1", "Add", mul_1, sub)
    g.node("gradients/Fill", "Fill", out)
    g.node("gradients/group", "NoOp", *[f"^{u}" for u in updates])
    grad = g.node("gradients/mul_grad", "Mul", "gradients/Fill", "^gradients/group")
    g.train_op(grad)
    return g


def zero_debias(version: str = "1.4") -> Graph:
    """``tf.contrib.layers.batch_norm(x, is_training=True, fused=False, zero_debias_moving_mean=True)``.

    The moving mean is zero-debiased: ``assign_moving_average`` keeps a shadow
    ``BatchNorm/moving_mean/biased`` (and ``local_step``) that averages the batch mean, and
    derives the moving mean from it. TF <= 1.12 (``version="1.4"``): ``AssignSub(moving_mean,
    moving_mean - biased.read_value() / (1 - (1 - decay) ** local_step))``, the reads after the
    shadow's update by control dependency. TF >= 1.13 (``version="2"``): ``Assign(moving_mean,
    update_biased / (1 - (1 - decay) ** update_local_step))``. The variance is averaged directly.
    The updates run in place (``updates_collections=None``).
    """
    g = Graph()
    s = "BatchNorm"
    x = g.node("conv/Conv2D", "Conv2D")
    reads = g.bn_ref_variables(s)
    biased, local_step = g.ref_variable(f"{s}/moving_mean/biased"), g.ref_variable(f"{s}/moving_mean/local_step")
    mean = g.node(f"{s}/moments/Squeeze", "Squeeze", f"{s}/moments/mean")
    variance = g.node(f"{s}/moments/Squeeze_1", "Squeeze", f"{s}/moments/variance")
    g.node(f"{s}/moments/mean", "Mean", x)
    g.node(f"{s}/moments/variance", "Mean", f"{s}/moments/SquaredDifference")
    a = f"{s}/AssignMovingAvg"
    decay = g.const(f"{a}/decay", 0.001)
    shifted = g.node(f"{a}/{s}/moving_mean/sub", "Sub", biased, mean)
    scaled = g.node(f"{a}/{s}/moving_mean/mul", "Mul", shifted, decay)
    update_biased = g.node(f"{a}/{s}/moving_mean", "AssignSub", f"{s}/moving_mean/biased", scaled)
    one = g.const(f"{a}/{s}/moving_mean/value", 1.0)
    g.node(f"{a}/{s}/moving_mean/AssignAdd", "AssignAdd", f"{s}/moving_mean/local_step", one)
    factor_base = g.node(f"{a}/{s}/moving_mean/sub_1/x", "Sub", one, decay)
    if version == "1.4":
        steps = g.node(f"{a}/{s}/moving_mean/read_1", "Identity", local_step, f"^{update_biased}")
        pow_ = g.node(f"{a}/{s}/moving_mean/Pow", "Pow", factor_base, steps)
        factor = g.node(f"{a}/{s}/moving_mean/sub_2", "Sub", one, pow_)
        shadow = g.node(f"{a}/{s}/moving_mean/read_2", "Identity", biased, f"^{update_biased}")
        unbiased = g.node(f"{a}/{s}/moving_mean/truediv", "RealDiv", shadow, factor)
        delta = g.node(f"{a}/{s}/moving_mean/sub_3", "Sub", reads["moving_mean"], unbiased)
        update = g.node(a, "AssignSub", f"{s}/moving_mean", delta)
    else:
        pow_ = g.node(f"{a}/Pow", "Pow", factor_base, f"{a}/{s}/moving_mean/AssignAdd")
        factor = g.node(f"{a}/sub_1", "Sub", one, pow_)
        unbiased = g.node(f"{a}/truediv", "RealDiv", update_biased, factor)
        update = g.node(f"{a}/", "Assign", f"{s}/moving_mean", unbiased)
    decay_1 = g.const(f"{s}/AssignMovingAvg_1/decay", 0.001)
    update_1 = g.moving_average(
        f"{s}/AssignMovingAvg_1", f"{s}/moving_variance", reads["moving_variance"], variance, decay_1
    )
    mean_out = g.node(f"{s}/Identity", "Identity", mean, f"^{update}", f"^{update_1}")
    variance_out = g.node(f"{s}/Identity_1", "Identity", variance, f"^{update}", f"^{update_1}")
    b = f"{s}/batchnorm"
    epsilon = g.const(f"{b}/add/y", 0.001)
    add = g.node(f"{b}/add", "Add", variance_out, epsilon)
    rsqrt = g.node(f"{b}/Rsqrt", "Rsqrt", add)
    mul = g.node(f"{b}/mul", "Mul", rsqrt, reads["gamma"])
    g.node(f"{b}/mul_1", "Mul", x, mul)
    mul_2 = g.node(f"{b}/mul_2", "Mul", mean_out, mul)
    sub = g.node(f"{b}/sub", "Sub", reads["beta"], mul_2)
    out = g.node(f"{b}/add_1", "Add", f"{b}/mul_1", sub)
    g.node("gradients/Fill", "Fill", out)
    g.train_op("gradients/Fill")
    return g
