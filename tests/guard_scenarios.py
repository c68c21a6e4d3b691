"""Training runs of tf_keras and TF1 graphs for tests/test_guards.py, each in a process of its own: they need
``TF_USE_LEGACY_KERAS=1`` before TensorFlow is imported, which the test process has long imported without.

``python -m tests.guard_scenarios tf1 DIR`` / ``tf_keras`` prints one JSON line per scenario:
{"name", "codes" (sorted "CODE layer"), "raised" (codes of a BatchNormStateError or null), ...}.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import tensorflow as tf

from bncheck.errors import BatchNormStateError


def _codes(findings: list) -> list[str]:
    return sorted(f"{f.code} {f.layer}" for f in findings)


def _print(name: str, **fields: object) -> None:
    print(json.dumps({"name": name, **fields}), flush=True)


# --------------------------------------------------------------------------- TF1 graphs, as the article builds them

v1 = tf.compat.v1
UPDATE_OPS = v1.GraphKeys.UPDATE_OPS


def _tf1_graph(kind: str) -> tuple[tf.Graph, object]:
    """A small TF1 training graph with one BN layer ``bn``, built the way ``kind`` says."""
    graph = tf.Graph()
    with graph.as_default():
        x = v1.placeholder(tf.float32, [None, 4], name="x")
        training = v1.placeholder_with_default(True, [], name="is_training")
        h = v1.layers.dense(x, 8, name="dense")
        if kind.startswith("tf.keras"):
            if kind == "tf.keras after set_learning_phase(0)":
                tf.keras.backend.set_learning_phase(0)
            layer = tf.keras.layers.BatchNormalization(name="bn")
            h = layer(h) if kind == "tf.keras after set_learning_phase(0)" else layer(h, training=True)
            updates = layer.updates if kind == "tf.keras with model.updates" else []
        else:
            h = v1.layers.batch_normalization(h, training=training, name="bn")
            updates = []
        loss = tf.reduce_mean(tf.square(v1.layers.dense(h, 1, name="out")))
        optimizer = v1.train.GradientDescentOptimizer(0.01)
        step = v1.train.get_or_create_global_step()
        if kind in ("control dependencies", "Saver(trainable_variables)"):
            with tf.control_dependencies(v1.get_collection(UPDATE_OPS)):
                train_op = optimizer.minimize(loss, global_step=step)
        elif updates:
            with tf.control_dependencies(updates):
                train_op = optimizer.minimize(loss, global_step=step)
        else:
            train_op = optimizer.minimize(loss, global_step=step)
        v1.train.Saver(v1.trainable_variables() if kind == "Saver(trainable_variables)" else None)
    return graph, train_op


TF1_KINDS = (
    "no control dependencies",
    "control dependencies",
    "Saver(trainable_variables)",
    "tf.keras in a TF1 graph",
    "tf.keras with model.updates",
    "tf.keras after set_learning_phase(0)",
)


def tf1(out: Path) -> None:
    """Each graph: check_graph's findings, assert_graph's verdict, and ``bncheck inspect`` of the checkpoint
    the same graph writes after a few steps (with its .meta): the oracle that the live graph is judged as the
    file is."""
    import bncheck
    from bncheck.tf1 import assert_graph, check_graph

    for i, kind in enumerate(TF1_KINDS):
        graph, train_op = _tf1_graph(kind)
        found = check_graph(graph, train_op)
        try:
            assert_graph(graph, train_op)
            raised = None
        except BatchNormStateError as exc:
            raised = _codes(exc.findings)
        with graph.as_default(), v1.Session(graph=graph) as session:
            session.run(v1.global_variables_initializer())
            x = graph.get_tensor_by_name("x:0")
            batch = np.random.RandomState(0).normal(1.0, 2.0, (16, 4)).astype("float32")
            for _ in range(3):
                session.run(train_op, {x: batch})
            saver = v1.train.Saver()  # all variables: the checkpoint holds the statistics to judge
            prefix = saver.save(session, str(out / f"model{i}" / "ckpt"), write_meta_graph=False)
            v1.train.export_meta_graph(str(out / f"model{i}" / "ckpt.meta"), graph=graph)
        graph_codes = {rule for rule in ("BN101", "BN102", "BN103", "BN104", "BN105")}
        inspected = [f for f in bncheck.inspect(prefix).findings if f.code in graph_codes]
        _print(kind, codes=_codes(found), raised=raised, inspected=_codes(inspected))


# --------------------------------------------------------------------------- tf_keras training


def tf_keras() -> None:
    """tf_keras: ``fit`` with the guard, and a custom loop without ``training=True``."""
    import tf_keras as keras

    from bncheck.keras import BatchNormGuard

    x = np.random.RandomState(0).normal(2.0, 3.0, (480, 6)).astype("float32")
    y = np.zeros(480, "int64")

    def build() -> keras.Model:
        keras.utils.set_random_seed(0)
        return keras.Sequential(
            [
                keras.Input((6,)),
                keras.layers.Dense(8),
                keras.layers.BatchNormalization(name="bn"),
                keras.layers.Dense(2),
            ]
        )

    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model = build()
    model.compile(keras.optimizers.Adam(), loss)
    guard = BatchNormGuard(after_steps=20)
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[guard])
    _print("fit", codes=_codes(guard.findings), steps=guard.monitor.steps, raised=None)

    model = build()
    optimizer = keras.optimizers.Adam()
    guard = BatchNormGuard(after_steps=20, model=model)
    raised = None
    try:
        for i in range(0, 480, 8):
            with tf.GradientTape() as tape:
                value = loss(y[i : i + 8], model(x[i : i + 8]))  # no training=True: BN runs in inference mode
            grads = tape.gradient(value, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
            guard.step()
    except BatchNormStateError as exc:
        raised = _codes(exc.findings)
    _print("custom loop without training=True", codes=_codes(guard.findings), steps=guard.monitor.steps, raised=raised)


if __name__ == "__main__":
    if sys.argv[1] == "tf1":
        tf1(Path(sys.argv[2]))
    else:
        tf_keras()
