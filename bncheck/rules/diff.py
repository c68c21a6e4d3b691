"""Diff rules BN201-BN204: they compare the BN layers of two checkpoints A and B (``bncheck diff``).

A check receives the :class:`~bncheck.deltas.DiffReport` (pairs and unpaired layers, no
findings yet) and a :class:`DiffContext`. "Changed" means beyond ``--rtol``/``--atol``.
"""

from __future__ import annotations

from collections.abc import Iterator
from fnmatch import fnmatchcase

from ..deltas import Delta, DiffReport, LayerPair
from ..facts import Framework
from ..findings import Severity
from .rule import DiffContext, DiffRule, Hit

STATS = ("moving_mean", "moving_variance")


def matching_globs(name: str, globs: tuple[str, ...]) -> list[str]:
    """The ``globs`` (--frozen) that match layer ``name`` (fnmatch, case-sensitive)."""
    return [glob for glob in globs if fnmatchcase(name, glob)]


def _change(role: str, delta: Delta) -> str:
    """'gamma by up to 0.0123 (4.5%)' or 'gamma (reshaped [4] -> [8])'."""
    if delta.status == "reshaped":
        return f"{role} (reshaped {list(delta.shape_a or ())} -> {list(delta.shape_b or ())})"
    if delta.max_abs is None:
        return f"{role} ({delta.status}{', NaN/Inf' if delta.nonfinite else ''})"
    relative = f" ({delta.max_rel:.1%})" if delta.max_rel is not None else ""
    nonfinite = f", {delta.nonfinite} element(s) now or formerly NaN/Inf" if delta.nonfinite else ""
    return f"{role} by up to {delta.max_abs:.3g}{relative}{nonfinite}"


def _values_changed(pair: LayerPair, *roles: str) -> list[str]:
    """The roles whose values changed beyond tolerance (not: added, removed, reshaped, unmapped)."""
    return [role for role in roles if role in pair.deltas and pair.deltas[role].status == "changed"]


def _changes(pair: LayerPair, roles: list[str]) -> str:
    return ", ".join(_change(role, pair.deltas[role]) for role in roles)


def stats_unchanged_while_trained(report: DiffReport, context: DiffContext) -> Iterator[Hit]:
    """Between checkpoint A and the later checkpoint B, the layer's gamma and/or beta
    changed (the optimizer trained it) while moving_mean and moving_variance stayed the
    same (bit-identical, or within --rtol/--atol). Only a change of values counts: gamma or beta
    present in one file only (removed, added, or not mapped by a ``.weights.h5`` without config)
    is BN203's or a note, not training.

    Why it matters: the moving statistics are updated by separate assign ops that run only
    when the layer is called in training mode and something makes the ops execute. If the
    optimizer moved gamma/beta but the statistics stood still, those ops did not run
    during the training between A and B: inference will normalise with stale statistics
    (exactly 0/1 if they never ran: see BN002 in ``bncheck inspect B``).

    Fix: TF1: ``with tf.control_dependencies(tf.get_collection(tf.GraphKeys.UPDATE_OPS)):
    train_op = opt.minimize(loss)`` and build the layers with ``training=True`` (a
    placeholder) while training; tf.keras layers in a TF1 graph keep their update ops in
    ``model.updates``, not in UPDATE_OPS: add them. Keras: do not call
    ``K.set_learning_phase(0)`` before building the model; ``model.fit`` runs the updates.
    TF2: call ``model(x, training=True)`` inside the custom training loop. PyTorch: the
    model ran in ``eval()`` mode while training: call ``model.train()`` before the loop
    (and again after each validation pass).

    Layers declared frozen with ``--frozen`` are left to BN202. Silence: ``--ignore BN201``.
    """
    for pair in report.pairs:
        if matching_globs(pair.name, context.must_not_change):
            continue
        trained = _values_changed(pair, "gamma", "beta")
        stats = [pair.deltas.get(role) for role in STATS]
        if not trained or not all(d is not None and d.status in ("identical", "within") for d in stats):
            continue
        same = "identical" if all(d.status == "identical" for d in stats if d) else "unchanged within tolerance"
        yield (
            pair.name,
            f"{_changes(pair, trained)} changed, but moving_mean and moving_variance are {same}: "
            f"the BN update ops did not run {context.between}",
        )


BN201 = DiffRule(
    code="BN201",
    name="stats-frozen-while-trained",
    severity=Severity.ERROR,
    summary="gamma/beta changed between A and B but the moving statistics did not",
    fix="make the BN update ops run while training (BN called in training mode, nothing skipping the updates)",
    fixes={
        Framework.TF1: "run the BN update ops with the train op (control_dependencies(UPDATE_OPS) around minimize; "
        "training=True)",
        Framework.TF2: "call the model with training=True in the training step (GradientTape loop)",
        Framework.KERAS: "train with model.fit, or call self(x, training=True) in a custom train_step; tf.keras: no "
        "K.set_learning_phase(0) before building",
        Framework.ONNX: "train the source model in training mode (PyTorch: model.train()) between the two exports",
        Framework.TORCH: "train in train mode: model.train() before the loop (not left in eval() after validation)",
    },
    check=stats_unchanged_while_trained,
)


def frozen_layer_drift(report: DiffReport, context: DiffContext) -> Iterator[Hit]:
    """A layer whose name matches a ``--frozen GLOB`` (fnmatch on layer names,
    repeatable) has a variable that changed between A (the base) and B (the fine-tuned
    model), was reshaped, added or removed.

    Why it matters: a frozen BN layer must keep the base model's gamma, beta and moving
    statistics. If only the statistics changed, the layer still ran in training mode and
    its update ops ran: it normalised with batch statistics during fine-tuning and now
    holds statistics of the new data mixed into the old (the classic TF1 fine-tune:
    ``trainable=False`` or an optimizer ``var_list`` without the BN variables freezes
    gamma/beta but not the moving averages). If gamma/beta changed, the optimizer still
    trains the layer.

    Fix: TF1: build the frozen layers with ``training=False`` (a separate
    ``is_training`` for the backbone) and keep their variables out of ``var_list``; only
    then wrap the train op in UPDATE_OPS. Keras (2.x in TF2, Keras 3): ``layer.trainable
    = False`` also runs BN in inference mode; call the base model with
    ``base(x, training=False)`` when fine-tuning. TF2 custom loops: call the frozen part
    with ``training=False`` and apply gradients only to ``model.trainable_variables``.
    PyTorch: ``requires_grad=False`` freezes weight and bias but not the statistics: a BN
    module in train mode still updates ``running_mean``/``running_var``. Call ``.eval()`` on
    the frozen modules after every ``model.train()``, or replace them by FrozenBatchNorm2d.

    Silence: narrow ``--frozen`` to the layers that must not change, or ``--ignore BN202``.
    """
    for pair in report.pairs:
        globs = matching_globs(pair.name, context.must_not_change)
        changed = pair.changed()
        if not globs or not changed:
            continue
        if _values_changed(pair, "gamma", "beta"):
            why = "the optimizer still trained it"
        elif _values_changed(pair, *STATS):
            why = "gamma/beta did not, so the layer still ran in training mode and updated its statistics"
        else:
            why = "the layer's variables differ between the files (see BN203)"
        yield (
            pair.name,
            f"declared frozen ({context.declared} {globs[0]!r}) but {_changes(pair, changed)} changed "
            f"{context.between}: {why}",
        )


BN202 = DiffRule(
    code="BN202",
    name="frozen-layer-drift",
    severity=Severity.ERROR,
    summary="a layer declared frozen (--frozen GLOB) changed between A and B",
    fix="run frozen BN layers in inference mode and leave them out of the optimizer",
    fixes={
        Framework.TF1: "build the frozen layers with training=False and leave their variables out of the var_list",
        Framework.TF2: "call the frozen part with training=False and apply gradients to model.trainable_variables",
        Framework.KERAS: "set layer.trainable = False and call the base model with base(x, training=False)",
        Framework.ONNX: "keep the frozen BN modules in eval() while fine-tuning (PyTorch: call .eval() on them after "
        "model.train()) and out of the optimizer",
        Framework.TORCH: "freeze BN with module.eval() after every model.train() (or FrozenBatchNorm2d); "
        "requires_grad=False alone still updates running_mean/running_var",
    },
    check=frozen_layer_drift,
)


def layer_set_changed(report: DiffReport, context: DiffContext) -> Iterator[Hit]:
    """A BN layer is in only one of A and B, or a layer in both gained, lost or reshaped
    a variable (for example moving_mean/moving_variance missing in B, or gamma of 64
    channels in A and 128 in B).

    Why it matters: restoring A's weights into B's model (or the reverse) silently
    leaves the missing variables at their initial values (statistics 0/1) or fails on the
    shapes; an export that dropped the moving statistics (a saver of trainable variables
    only) shows up here first. Layers are paired by name: a renamed layer looks removed
    and added.

    Fix: TF1: save with ``tf.compat.v1.train.Saver()`` (all global variables), not
    ``Saver(tf.trainable_variables())``; give layers stable names (``name=`` in
    ``tf.layers``) so that scopes do not renumber when the graph changes. Keras: name
    layers explicitly and save with ``model.save``/``save_weights`` (they include the
    moving statistics). TF2: ``tf.train.Checkpoint(model=model)`` tracks every variable.

    Silence: ``--ignore BN203`` when the architecture change is intended.
    """
    for name in report.only_a:
        yield name, "BN layer in A is not in B (removed or renamed)"
    for name in report.only_b:
        yield name, "BN layer in B is not in A (added or renamed)"
    for pair in report.pairs:
        parts = []
        for status, verb in (("added", "added in B"), ("removed", "missing in B")):
            roles = [role for role, delta in pair.deltas.items() if delta.status == status]
            if roles:
                parts.append(f"{', '.join(roles)} {verb}")
        reshaped = [role for role, delta in pair.deltas.items() if delta.status == "reshaped"]
        if reshaped:
            parts.append(_changes(pair, reshaped))
        if parts:
            yield pair.name, "; ".join(parts)


BN203 = DiffRule(
    code="BN203",
    name="layer-set-changed",
    severity=Severity.WARNING,
    summary="BN layers or BN variables added, removed or reshaped between A and B",
    fix="compare checkpoints of the same architecture, saved with all variables",
    check=layer_set_changed,
)


def stats_shift(report: DiffReport, context: DiffContext) -> Iterator[Hit]:
    """moving_mean or moving_variance changed by more than ``stats_shift`` (default 1.0,
    ``--shift``) relative to their size: max |B - A| over the channels divided by the
    smaller of max |A| and max |B|. 1.0 means a statistic more than doubled, fell below
    half, or moved by more than its own magnitude.

    Why it matters: between two checkpoints of one training run, or a base model and a
    fine-tune on similar data, the statistics drift slowly. A large jump means B saw very
    different data (a domain shift, unnormalised inputs, a different preprocessing), a
    momentum that forgets fast, a tiny or unrepresentative batch, or values broken by an
    export or a conversion.

    Not reported: a moving_variance whose every channel differs by one constant
    n/(n-1) (or (n-1)/n) for an integer n >= 2. Fused batch norm kernels update the
    moving variance with Bessel's correction (the unbiased variance over n values per
    channel) and unfused ones without it, so the same training run through the two gives
    exactly this factor: it is said in a note, not judged.

    Fix: compare the preprocessing of the data behind A and B; TF1 and Keras: a momentum
    of 0.9-0.99 and batches of more than a few samples; freeze BN (training=False) when
    fine-tuning on small data sets; TF2: the same in ``tf.keras.layers.BatchNormalization``.

    Silence: ``--shift X`` (or threshold ``stats_shift`` in ``[tool.bncheck]``), or ``--ignore BN204``.
    """
    limit = context.thresholds.stats_shift
    for pair in report.pairs:
        moved = []
        for role in STATS:
            delta = pair.deltas.get(role)
            if delta is None or delta.status != "changed" or delta.max_rel is None or delta.max_rel <= limit:
                continue
            if role == "moving_variance" and pair.bessel:
                continue
            text = _change(role, delta)
            if role == "moving_variance" and pair.variance_ratio is not None:
                text += f", x{pair.variance_ratio:.4g} in every channel"
            moved.append(text)
        if moved:
            yield pair.name, f"{'; '.join(moved)}: more than the stats_shift threshold {limit:g} allows"


BN204 = DiffRule(
    code="BN204",
    name="stats-shift",
    severity=Severity.WARNING,
    summary="moving statistics moved by more than the stats_shift threshold (relative, default 1.0)",
    fix="check that B was trained on data like A's, with the update ops and momentum you expect",
    check=stats_shift,
)
