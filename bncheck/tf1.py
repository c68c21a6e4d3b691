"""The graph rules (BN101-BN105) on a live TF1 graph, before its first ``session.run``.

>>> from bncheck.tf1 import assert_graph
>>> train_op = optimizer.minimize(loss)
>>> assert_graph(train_op=train_op)  # raises BatchNormStateError if the BN update ops will not run

The graph is exported as the MetaGraphDef a ``.meta`` file holds and digested by the reader of ``.meta`` files
(:mod:`bncheck.readers.metagraph`), so the findings are those ``bncheck inspect`` gives on the checkpoint
this training would write: BN update ops missing (BN101: built with ``training=False``, or
``set_learning_phase(0)`` before building), not run by the train op (BN102: no
``control_dependencies(UPDATE_OPS)``), not in UPDATE_OPS (BN103: ``tf.keras`` layers in a TF1 graph), a
Saver that skips the statistics (BN104: ``Saver(tf.trainable_variables())``), statistics trained by
gradient (BN105). This module imports TensorFlow: ``import bncheck`` does not import it.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import tensorflow as tf

from .analysis import analyse
from .config import Settings
from .facts import Framework, GraphFacts, ModelFile, Variable
from .findings import Finding
from .guarding import LOG, tell
from .readers.graph import VARIABLE_OPS, variable_name
from .readers.metagraph import digest
from .readers.proto import tf_subset_pb2 as pb
from .rules import Needs, of_kind
from .rules.rule import Kind

__all__ = ["assert_graph", "check_graph"]

LIVE = "the TF1 graph"
NO_VALUES = "the graph's variables hold no values before session.run"


def _no_values(key: str) -> Any:
    raise RuntimeError(f"{key}: {NO_VALUES}")  # never called: the model says so in its errors


def meta_graph(graph: Any = None, train_op: Any = None) -> Any:
    """``graph`` (default: the default graph) as bncheck's MetaGraphDef; ``train_op`` (an op, a tensor or a list
    of them) becomes its ``train_op`` collection, else the graph's own (or its optimizer's apply ops) counts."""
    graph = graph if graph is not None else tf.compat.v1.get_default_graph()
    with graph.as_default():  # (exporting needs graph mode, which TF2 programs leave only inside a graph)
        exported = tf.compat.v1.train.export_meta_graph(graph=graph, clear_devices=True)
    meta = pb.MetaGraphDef.FromString(exported.SerializeToString())
    if train_op is not None:
        ops = list(train_op) if isinstance(train_op, list | tuple) else [train_op]
        names = [getattr(op, "op", op).name for op in ops]
        meta.collection_def["train_op"].node_list.value[:] = names
    return meta


def _variables(meta: Any) -> tuple[Variable, ...]:
    """The graph's variables, as a checkpoint it writes would list them (without values)."""
    found: dict[str, Variable] = {}
    for node in meta.graph_def.node:
        if node.op in VARIABLE_OPS:
            name = variable_name(node.name)
            shape = tuple(max(d.size, 0) for d in node.attr["shape"].shape.dim)
            found.setdefault(name, Variable(name, name, "float32", shape, _no_values))
    return tuple(found.values())


def graph_model(facts: GraphFacts, meta: Any) -> ModelFile:
    """The live graph as the model a ``.meta`` beside its checkpoint makes, its values not yet there."""
    return ModelFile(
        LIVE,
        "a TF1 graph before training",
        _variables(meta),
        errors=(NO_VALUES,),
        graph=facts,
        structure=facts.layers,
        framework=Framework.TF1,
        notes=facts.notes,
    )


def check_graph(graph: Any = None, train_op: Any = None, settings: Settings | None = None) -> list[Finding]:
    """The findings of the graph rules (BN101-BN105) on ``graph`` (default: the default graph), with
    ``train_op`` as the op the training runs (default: the graph's ``train_op`` collection, else its optimizer's
    apply ops); ``settings``: select, ignore and per-layer ignores as ``bncheck inspect`` takes them."""
    settings = settings or Settings()
    meta = meta_graph(graph, train_op)
    facts = digest(meta, LIVE)
    for note in facts.notes:
        LOG.warning("bncheck: %s", note.replace(f"{LIVE}: ", "", 1))
    codes = tuple(
        rule.code for rule in of_kind(Kind.INSPECT) if rule.needs is Needs.GRAPH and settings.wants(rule.code)
    )
    if not codes:
        return []
    return analyse(graph_model(facts, meta), replace(settings, select=codes, ignore=())).findings


def assert_graph(graph: Any = None, train_op: Any = None, settings: Settings | None = None) -> list[Finding]:
    """:func:`check_graph`, raising :class:`~bncheck.errors.BatchNormStateError` for its findings at the
    settings' ``fail_on`` (error) or worse; the others are logged and returned."""
    settings = settings or Settings()
    findings = check_graph(graph, train_op, settings)
    tell(findings, settings.fail_on, "raise", "in the TF1 graph, before training")
    return findings
