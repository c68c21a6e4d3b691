"""Which BN layers an inference entry point runs, and which of them normalise with batch statistics.

An entry point is a SavedModel signature (its function, or the tensors a TF1 signature names) or
a whole frozen GraphDef. The walk visits what running it runs: in a TF1 graph the nodes its
outputs depend on, without the side of a ``Switch`` (a TF1 ``cond``) that its predicate switches
off; in a function body every node (TF2 runs a function's stateful ops whether or not an output
needs them); into the functions called by ``PartitionedCall``/``StatefulPartitionedCall`` (attr
``f``), by name, by ``If`` (the branch its predicate takes), ``Case`` and ``While``. A predicate is
a constant or the default of a ``placeholder_with_default``; what the walk reads through an ``If``
or a ``Merge`` is what the branch taken returns.

A BN op normalises with batch statistics (training mode) when it is a ``FusedBatchNorm*``
with ``is_training=true``, the unfused pattern over the batch's moments, or when the entry point
assigns its moving statistics a computed value (assigns of moving statistics no op reads, as
renormalisation's, make a layer of their own). Where a predicate is not known (a placeholder
without default, which must be fed; a value computed at run time), the walk takes it as false
(served) and walks again with it true: the layers that then normalise with batch statistics are
not judged, a note says what switches them. An entry point that computes gradients or applies an
optimizer is a training function and is not judged either.

A damaged library (a function calling itself, a missing function, nesting deeper than
``MAX_DEPTH``, more than ``MAX_NODES`` nodes visited in one file) ends the walk with a note,
never a recursion error or a hang. A function called again on the same variables and switches is
walked once.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from ..facts import BatchStatistics, GraphLayer
from .graph import ASSIGN_OPS, IF_OPS, MERGE_OPS, GraphIndex, input_name, tensor_name, variable_name
from .numbers import attribute_number
from .structure import dedupe_layers, layer_name, normalisation

MAX_DEPTH = 64  # nested calls; TensorFlow's own graphs nest a handful deep
MAX_NODES = 500_000  # nodes visited per file (a ResNet-152 serving function has about 10,000)
CALL_OPS = frozenset({"PartitionedCall", "StatefulPartitionedCall", "TPUPartitionedCall"})
CASE_OPS = frozenset({"Case", "StatelessCase"})
WHILE_OPS = frozenset({"While", "StatelessWhile"})
SWITCH_OPS = frozenset({"Switch", "RefSwitch"})
# Gradients and optimizers: a training step. (Conv2DBackpropInput is the forward op of a transposed convolution.)
_TRAINING_OP = re.compile(r"^(Resource)?(Sparse)?Apply[A-Z]|Grad(V\d)?$|BackpropFilter|^SymbolicGradient$")
# A moving statistic assigned where no op normalises with it (the layer is found by the assign alone).
_STATISTIC = re.compile(r"(^|/)(moving|running|pop)_?(?P<what>mean|var|variance)(_\d+)?$")


class Budget:
    """The nodes one file's walks may still visit."""

    def __init__(self, nodes: int | None = None) -> None:
        self.left = MAX_NODES if nodes is None else nodes


@dataclass(frozen=True)
class Entry:
    """One inference entry point: where its walk starts."""

    label: str  # "signature 'serving_default'", "the frozen graph"
    index: GraphIndex
    roots: tuple[str, ...] | None = None  # output tensors in a TF1 graph; None: every node of ``index`` runs


@dataclass
class Verdict:
    """What an entry point's walk found."""

    layers: list[GraphLayer] = field(default_factory=list)  # ``batch_statistics`` set where training mode runs
    switched: dict[str, str] = field(default_factory=dict)  # layer -> what would make it use batch statistics
    training: str | None = None  # an op showing the entry point trains (gradients, optimizer); then not judged
    notes: list[str] = field(default_factory=list)


class _Exhausted(Exception):
    """The walk visited its budget of nodes."""


class _Walk:
    """One walk of an entry point, with every predicate it cannot know taken as ``unknown``."""

    def __init__(self, entry: Entry, unknown: bool, budget: Budget) -> None:
        self.entry = entry
        self.unknown = unknown
        self.budget = budget
        self.verdict = Verdict()
        self.found: dict[frozenset[tuple[str, str]], GraphLayer] = {}
        self.batch: dict[frozenset[tuple[str, str]], str] = {}
        self.assigned: dict[str, str] = {}  # variable -> the op assigning it a computed value
        self.switches: dict[str, str] = {}  # what the walk took as ``unknown`` -> what makes it true, in words
        self.walked: set[tuple[str, ...]] = set()  # (function, what each argument reads) walked already

    def truth(self, index: GraphIndex, ref: str) -> bool | None:
        """A predicate's value: its constant or default; else ``unknown``, noting what decides it."""
        value, placeholder, inverted = index.boolean(ref)
        if value is not None:
            return value
        if placeholder is not None:
            self.switches.setdefault(placeholder, f"{placeholder} (no default) is fed {not inverted}")
        else:
            self.switches.setdefault(input_name(ref), f"{input_name(ref)} (computed when run) is true")
        return self.unknown

    def scan(self, index: GraphIndex, nodes: Iterable[Any], where: str, stack: tuple[str, ...]) -> None:
        """Visit ``nodes`` of ``index`` (``where``: the calls leading there, as a name prefix)."""
        for node in nodes:
            self.budget.left -= 1
            if self.budget.left <= 0:
                raise _Exhausted
            reading = normalisation(index, node)
            if reading is not None:
                self._record(reading, where, node.name)
                continue
            if node.op in ASSIGN_OPS and len(node.input) >= 2:
                target = index.variable(node.input[0])
                # a value read from a variable is written back (tf_keras' fused BN when not training), not computed
                if target is not None and index.source(node.input[1]) is None:
                    self.assigned.setdefault(target, f"{where}{node.name}")
            elif self.verdict.training is None and _TRAINING_OP.search(node.op):
                self.verdict.training = node.op
            for name, inputs in self._calls(index, node):
                self._call(index, node, name, inputs, where, stack)

    def _calls(self, index: GraphIndex, node: Any) -> Iterator[tuple[str, list[str]]]:
        """(function, the inputs it receives) of every call ``node`` makes that runs."""
        data = [ref for ref in node.input if not ref.startswith("^")]
        if node.op in CALL_OPS:
            if "f" in node.attr:
                yield node.attr["f"].func.name, data
        elif node.op in index.functions:
            yield node.op, data
        elif node.op in IF_OPS and data:
            attr = "then_branch" if self.truth(index, data[0]) else "else_branch"
            if attr in node.attr:
                yield node.attr[attr].func.name, data[1:]
        elif node.op in CASE_OPS and "branches" in node.attr:
            for function in node.attr["branches"].list.func:
                yield function.name, data[1:]
        elif node.op in WHILE_OPS:
            for attr in ("cond", "body"):
                if attr in node.attr:
                    yield node.attr[attr].func.name, data

    def _call(
        self, index: GraphIndex, node: Any, name: str, inputs: list[str], where: str, stack: tuple[str, ...]
    ) -> None:
        label = self.entry.label
        if name in stack:
            self.verdict.notes.append(f"{label}: function {name} calls itself; the call is not followed")
            return
        if len(stack) >= MAX_DEPTH:
            self.verdict.notes.append(
                f"{label}: calls nest deeper than {MAX_DEPTH} at {where}{node.name}: not followed"
            )
            return
        # the same function on the same variables and switches finds the same again
        bound = (name, *(f"{index.variable(ref)}|{index.boolean(ref)[0]}" for ref in inputs))
        if bound in self.walked:
            return
        self.walked.add(bound)
        callee = index.call(node, name, inputs)
        if callee is None:
            self.verdict.notes.append(f"{label}: {where}{node.name} calls function {name}, which the library lacks")
            return
        self.scan(callee[1], callee[1].nodes.values(), f"{where}{node.name}/", (*stack, name))

    def _record(self, reading: Any, where: str, name: str) -> None:
        members = {role: variable_name(node.name) for role, node in reading.sources.items() if node is not None}
        has_statistics = bool({"moving_mean", "moving_variance"} & members.keys())
        if not has_statistics and not (reading.batch and {"gamma", "beta"} & members.keys()):
            return  # no statistics and no batch moments: not BN (layer normalisation shares the arithmetic)
        key = frozenset(members.items())
        op = f"{where}{name}"
        if key not in self.found:
            self.found[key] = GraphLayer(layer_name(members, op), members, attribute_number(reading.epsilon), op)
        if reading.batch:
            self.batch.setdefault(key, f"{reading.batch} ({name})")

    def run(self) -> Verdict:
        index = self.entry.index
        settled = index.settled(_dead(index, self.truth), self.truth)
        nodes = index.nodes.values() if self.entry.roots is None else _needed(settled, self.entry.roots)
        try:
            self.scan(settled, (node for node in nodes if node.name not in settled.dead), "", ())
        except _Exhausted:
            self.verdict.notes.append(
                f"{self.entry.label}: more than {MAX_NODES:,} nodes to visit; the rest not judged"
            )
        layers, owned = [], set()
        for key, layer in self.found.items():
            owned.update(layer.members.values())
            how = self.batch.get(key)
            if how is None:
                assigns = [self.assigned[name] for name in layer.members.values() if name in self.assigned]
                how = f"assigns its moving statistics ({assigns[0].rpartition('/')[2]})" if assigns else None
            layers.append(replace(layer, batch_statistics=(BatchStatistics(how),)) if how else layer)
        self.verdict.layers = dedupe_layers(layers) + self._assigned_only(owned)
        return self.verdict

    def _assigned_only(self, owned: set[str]) -> list[GraphLayer]:
        """Layers known only by the assigns to their moving statistics (no op found reading them: renorm)."""
        by_scope: dict[str, dict[str, str]] = {}
        ops: dict[str, str] = {}
        for variable, op in self.assigned.items():
            match = _STATISTIC.search(variable)
            if match and variable not in owned:
                role = "moving_mean" if match["what"] == "mean" else "moving_variance"
                scope = variable[: match.start()].rstrip("/")
                by_scope.setdefault(scope, {})[role] = variable
                ops.setdefault(scope, op)
        return [
            GraphLayer(
                scope or ops[scope],
                members,
                op=ops[scope],
                batch_statistics=(BatchStatistics(f"assigns its moving statistics ({ops[scope].rpartition('/')[2]})"),),
            )
            for scope, members in by_scope.items()
        ]


def judge(entry: Entry, budget: Budget | None = None) -> Verdict:
    """Walk one entry point (see the module docstring), spending ``budget`` (shared by a file's entry points);
    where predicates are not known, walk it again with them true to name the layers they would switch to batch
    statistics."""
    budget = budget or Budget()
    try:
        walk = _Walk(entry, unknown=False, budget=budget)
        verdict = walk.run()
        if walk.switches:
            fed = _Walk(entry, unknown=True, budget=budget).run()
            judged = {layer.name for layer in verdict.layers if layer.batch_statistics}
            condition = " and ".join(walk.switches.values())
            verdict.switched = {
                layer.name: condition for layer in fed.layers if layer.batch_statistics and layer.name not in judged
            }
    except RecursionError:  # a protobuf nested beyond reason
        return Verdict(notes=[f"{entry.label}: the graph nests beyond reason; not judged"])
    return verdict


def judged_layers(verdict: Verdict, where: str, writer: str = "", fix: str = "") -> list[GraphLayer]:
    """The layers of a verdict, their batch statistics said to be found at ``where`` in a graph ``writer`` wrote
    (with that writer's ``fix``); none in a training function: it is not judged."""
    if verdict.training is not None:
        return [replace(layer, batch_statistics=()) for layer in verdict.layers]
    return [
        replace(
            layer,
            batch_statistics=tuple(replace(b, where=where, writer=writer, fix=fix) for b in layer.batch_statistics),
        )
        if layer.batch_statistics
        else layer
        for layer in verdict.layers
    ]


def notes_of(entry: Entry, verdict: Verdict) -> list[str]:
    """What a verdict leaves unjudged, in words: a training function; layers a fed placeholder switches."""
    notes = list(dict.fromkeys(verdict.notes))  # a damaged call met at every call site is said once
    if verdict.training is not None:
        notes.append(
            f"{entry.label} trains ({verdict.training} ops: gradients or an optimizer): a training function, "
            "not judged for batch statistics at inference (BN013)"
        )
    by_switch: dict[str, list[str]] = {}
    for layer, condition in verdict.switched.items():
        by_switch.setdefault(condition, []).append(layer)
    for condition, layers in by_switch.items():
        subject = f"layer {layers[0]} normalises" if len(layers) == 1 else f"layers {', '.join(layers)} normalise"
        notes.append(f"{entry.label}: {subject} with batch statistics when {condition}; serving must avoid that")
    return notes


def _needed(index: GraphIndex, roots: Iterable[str]) -> list[Any]:
    """The nodes the roots depend on (data and control inputs), without the dead ones, in graph order."""
    seen: set[str] = set()
    stack = [input_name(ref) for ref in roots]
    while stack:
        name = stack.pop()
        if name in seen or name in index.dead:
            continue
        seen.add(name)
        node = index.nodes.get(name)
        if node is not None:
            stack += [input_name(ref) for ref in node.input]
    return [node for name, node in index.nodes.items() if name in seen]


def _dead(index: GraphIndex, truth: Callable[[GraphIndex, str], bool | None]) -> frozenset[str]:
    """Nodes on the side of a TF1 ``Switch`` that its predicate turns off, and what only they feed; a
    ``Merge`` is dead when all its inputs are."""
    dead: set[str] = set()
    frontier: list[Any] = []
    for switch in index.of_type(sorted(SWITCH_OPS)):
        value = truth(index, switch.input[1]) if len(switch.input) > 1 else None
        if value is None:
            continue
        off = f"{switch.name}:{0 if value else 1}"  # output 0 flows when the predicate is false
        frontier += [u for u in index.consumers.get(switch.name, ()) if any(tensor_name(r) == off for r in u.input)]
    while frontier:
        node = frontier.pop()
        if node.name in dead:
            continue
        if node.op in MERGE_OPS and not all(input_name(r) in dead for r in node.input if not r.startswith("^")):
            continue
        dead.add(node.name)
        frontier += index.consumers.get(node.name, ())
    return frozenset(dead)
