"""What readers return: the facts of one model file (its variables, what it records about its layers,
its training graph), before any grouping or judgement."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np


class Framework(Enum):
    """Who wrote a file, in the terms its fixes are spelled in."""

    TF1 = "TF1"  # tf.compat.v1 graphs: name-based checkpoints, .meta, TF1 SavedModels, frozen GraphDefs
    TF2 = "TF2"  # tf.train.Checkpoint / tf.saved_model in eager TF2: object-based checkpoints, TF2 SavedModels
    KERAS = "Keras"  # model.fit / model.save: .keras, .h5, .weights.h5
    ONNX = "ONNX"  # an exporter's model (torch.onnx, tf2onnx)
    TORCH = "PyTorch"  # torch.save state dicts and modules, safetensors

    @property
    def label(self) -> str:
        return _FRAMEWORK_LABELS[self]


_FRAMEWORK_LABELS = {
    Framework.TF1: "TF1 (tf.compat.v1 graphs and Saver checkpoints)",
    Framework.TF2: "TF2 (tf.train.Checkpoint, tf.saved_model, custom training loops)",
    Framework.KERAS: "Keras (model.fit, .keras/.h5 files)",
    Framework.ONNX: "ONNX (models exported by torch.onnx or tf2onnx)",
    Framework.TORCH: "PyTorch (torch.save state dicts, safetensors)",
}


class _Nothing(Mapping):
    """The empty mapping that many thousands of objects share (slots, values, stats); pickled as itself."""

    __slots__ = ()

    def __getitem__(self, key: object) -> Any:
        raise KeyError(key)

    def __iter__(self) -> Iterator[Any]:
        return iter(())

    def __len__(self) -> int:
        return 0

    def __contains__(self, key: object) -> bool:
        return False

    def get(self, key: object, default: Any = None) -> Any:
        return default

    def __reduce__(self) -> str:
        return "NOTHING"


NOTHING: Mapping = _Nothing()


def detached(key: str) -> np.ndarray:
    """The reader of a Variable that was pickled (a Report sent to another process): its file is not open here."""
    from .errors import InputError

    raise InputError(f"{key}: not loaded here (the report was pickled; the model's files are read where it was made)")


@dataclass(eq=False, slots=True)  # slots: a checkpoint may hold 80,000 of them
class Variable:
    """One saved tensor, its value loaded only when asked for."""

    key: str  # the key in the file
    name: str  # the name users know (object-graph full_name, else the key)
    dtype: str
    shape: tuple[int, ...]
    read: Callable[[str], np.ndarray] = field(repr=False)  # the file's reader: key -> value (one per file)
    slots: Mapping[str, Variable] = field(default_factory=lambda: NOTHING)  # optimizer slots, EMA shadows

    def load(self) -> np.ndarray:
        return self.read(self.key)

    def __reduce__(self) -> tuple[Any, ...]:  # pickled without its file's reader (an open file, a closure)
        return Variable, (self.key, self.name, self.dtype, self.shape, detached, self.slots)

    def __copy__(self) -> Variable:  # a copy in this process still reads its file
        return Variable(self.key, self.name, self.dtype, self.shape, self.read, self.slots)

    def __deepcopy__(self, memo: dict[int, Any]) -> Variable:
        return self.__copy__()

    @property
    def size(self) -> int:
        return math.prod(self.shape)  # 1 for a scalar


@dataclass(frozen=True)
class BatchStatistics:
    """An inference entry point that normalises a layer with the statistics of the batch (training mode)."""

    how: str  # "FusedBatchNormV3 with is_training=true (bn1/FusedBatchNormV3)"
    where: str = ""  # "signature 'serving_default'", "the frozen graph"
    writer: str = ""  # who wrote the graph: "tf.saved_model.save", "Keras 3", "tf_keras", "TF1"
    fix: str = ""  # that writer's fix

    def __str__(self) -> str:
        written = f" (written by {self.writer})" if self.writer else ""
        return f"{self.where}{written}: {self.how}" if self.where else self.how


@dataclass(frozen=True)
class LayerHints:
    """What a format records about a layer beyond its values (Keras configs, graphs)."""

    momentum: float | None = None
    epsilon: float | None = None
    trainable: bool = True  # False: Keras trainable=False, training does not update the layer
    is_bn: bool = True
    training_mode: bool = False  # an exported node that computes batch statistics (ONNX training_mode=1)
    training_in: tuple[BatchStatistics, ...] = ()  # where an exported graph does so (a signature, a frozen graph)
    unmapped: tuple[str, ...] = ()  # roles the file may hold under a name it cannot map (gamma or beta: vars/0)
    batches_tracked: int | None = None  # PyTorch's num_batches_tracked: how many times the statistics were updated


NO_HINTS = LayerHints()


@dataclass(frozen=True)
class GraphVariable:
    """What a training graph says about one variable (keyed by its checkpoint name)."""

    name: str
    update_ops: tuple[str, ...] = ()  # moving-average assign ops that write it
    updates_run: bool = False  # a train op depends on one of them
    updates_collected: bool = False  # one of them is in the UPDATE_OPS collection
    saved: bool | None = None  # in the Saver's tensor list; None: the graph has no Saver
    trainable: bool = False  # in the trainable_variables collection
    momentum: float | None = None  # 1 - the update's decay, when a constant
    decay_placeholder: str | None = None  # placeholder the decay depends on (keras_learning_phase)


@dataclass(frozen=True)
class GraphLayer:
    """A BN layer found by the structure of a graph (the ops that normalise with it), not by names."""

    name: str  # the common scope of its variables, else the scope of the normalising op
    members: dict[str, str]  # role -> variable (or constant) name, traced through Identity/read nodes
    epsilon: float | None = None
    op: str = ""  # the node that normalises (FusedBatchNorm*, or the Rsqrt of tf.nn.batch_normalization)
    updates: dict[str, str] = field(default_factory=dict)  # role -> assign op averaging a batch statistic into it
    batch_statistics: tuple[BatchStatistics, ...] = ()  # in an inference graph: where it normalises with them


@dataclass(frozen=True)
class GraphFacts:
    """A training graph digested for the graph rules: no nodes, only what the rules consult."""

    path: str
    variables: dict[str, GraphVariable]  # by variable name (partition suffixes removed)
    train_ops: tuple[str, ...] = ()  # empty: not a training graph
    saver: str | None = None  # the save op(s) of the graph's Saver
    epsilon: dict[str, float] = field(default_factory=dict)  # by layer scope, from the normalisation ops
    notes: tuple[str, ...] = ()
    layers: tuple[GraphLayer, ...] = ()  # BN layers found by structure

    def numbers_by_scope(self) -> dict[str, tuple[float | None, float | None]]:
        """Momentum and epsilon per scope holding moving statistics, as the graph's ops show them."""
        numbers: dict[str, tuple[float | None, float | None]] = {}
        for name, variable in self.variables.items():
            scope, _, role = name.rpartition("/")
            if role in ("moving_mean", "moving_variance") and scope:
                momentum, epsilon = numbers.get(scope, (None, self.epsilon.get(scope)))
                numbers[scope] = (momentum if momentum is not None else variable.momentum, epsilon)
        return {scope: pair for scope, pair in numbers.items() if pair != (None, None)}


@dataclass(frozen=True)
class Step:
    """How many training steps the file records, and the variable or field that says so."""

    count: int
    source: str  # e.g. "global_step", "optimizer iterations", "save_counter"

    @property
    def counts_updates(self) -> bool:
        """Whether it counts updates (``save_counter`` counts saves, ``epoch`` epochs)."""
        return not self.source.endswith(("save_counter", "epoch"))


@dataclass(frozen=True)
class ModelFile:
    """Everything a reader found in one model (a checkpoint, a SavedModel, a .keras/.h5 file, a frozen graph,
    an ONNX model), before any grouping. Stages that add to it (the training graph beside it) return a new one."""

    path: str  # the model as the user named it (or a scan found it)
    format: str
    variables: tuple[Variable, ...]
    step: Step | None = None
    hints: Mapping[str, LayerHints] = field(default_factory=lambda: NOTHING)  # by layer name
    errors: tuple[str, ...] = ()  # what could not be read
    notes: tuple[str, ...] = ()  # what the reader saw but could not settle (shown, not judged)
    main_file: str = ""  # the one file that stands for the model (e.g. the .index); default: path
    graph: GraphFacts | None = None  # the training graph beside it (.meta, SavedModel "train" tag)
    structure: tuple[GraphLayer, ...] | None = None  # BN layers found by a graph's structure; None: no graph read
    framework: Framework | None = None  # who wrote it, for the spelling of causes and fixes; None: unknown
    close: Callable[[], None] = field(default=lambda: None, repr=False, compare=False)  # closes the files read

    def __post_init__(self) -> None:
        if not self.main_file:
            object.__setattr__(self, "main_file", self.path)
