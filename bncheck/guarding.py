"""What the training-time guards share (:mod:`bncheck.keras`, :mod:`bncheck.torch`): snapshots of a live model's
BN layers, judged by the rules ``bncheck inspect`` and ``bncheck diff`` run on saved files.

A framework's adapter hands a :class:`Monitor` numpy copies of each BN layer's variables (:class:`LiveLayer`)
after optimizer steps; the monitor makes each snapshot a :class:`~bncheck.facts.ModelFile` and runs
:func:`~bncheck.analysis.analyse` on it (the health rules BN004/BN005 every ``every`` steps, every inspect rule
every ``after_steps``) and :func:`~bncheck.comparison.compare` between the snapshots at the start and the end
of each ``after_steps`` window (BN201: gamma/beta trained, statistics did not move; BN202: a layer declared
frozen moved). Imports no framework.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from .analysis import analyse
from .comparison import compare
from .config import Settings
from .errors import BatchNormStateError
from .facts import NO_HINTS, Framework, LayerHints, ModelFile, Step, Variable
from .findings import Finding, Severity

if TYPE_CHECKING:
    import numpy as np

ON_FAILURE = ("raise", "warn", "stop")
HEALTH = ("BN004", "BN005")  # judged every `every` steps: broken values as soon as they appear
WINDOW = ("BN201", "BN202")  # the diff rules that judge one window of training (the others judge two files)
STEPS = "optimizer steps the guard saw"
LOG = logging.getLogger("bncheck")
LEVELS = {Severity.ERROR: logging.ERROR, Severity.WARNING: logging.WARNING}  # of a finding that is logged


@dataclass(frozen=True)
class LiveLayer:
    """One BN layer of a model in training: copies of its variables by role, and what its framework says."""

    name: str
    values: Mapping[str, np.ndarray]  # role ('gamma', 'beta', 'moving_mean', 'moving_variance') -> a copy
    hints: LayerHints = NO_HINTS


def snapshot(layers: Iterable[LiveLayer], framework: Framework, steps: int, label: str) -> ModelFile:
    """``layers`` as the :class:`ModelFile` a reader would make of a file holding them, ``steps`` its step."""
    arrays: dict[str, np.ndarray] = {}
    variables, hints = [], {}
    for layer in layers:
        hints[layer.name] = layer.hints
        for role, value in layer.values.items():
            key = f"{layer.name}/{role}"
            arrays[key] = value
            variables.append(Variable(key, key, str(value.dtype), tuple(value.shape), arrays.__getitem__))
    step = Step(steps, STEPS) if steps else None
    return ModelFile(label, "a model in training", tuple(variables), step, hints, framework=framework)


def frozen_globs(frozen: str | Iterable[str]) -> tuple[str, ...]:
    """The ``frozen=`` argument of a guard as layer-name globs."""
    globs = (frozen,) if isinstance(frozen, str) else tuple(frozen)
    if not all(isinstance(glob, str) and glob for glob in globs):
        raise ValueError(f"frozen: layer-name globs (str), not {frozen!r}")
    return globs


def exactly(name: str) -> str:
    """An fnmatch glob that matches ``name`` only."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


def describe(findings: Sequence[Finding], when: str) -> str:
    """The findings, one per line with its fix, found ``when`` ("after 50 training step(s)"): the message of
    :class:`BatchNormStateError`."""
    lines = [f"bncheck: {len(findings)} BatchNormalization problem(s) {when}:"]
    for finding in findings:
        lines.append(f"  {finding.code} {finding.name} ({finding.severity.label}) {finding.layer}: {finding.message}")
        if finding.fix:
            lines.append(f"    fix: {finding.fix}")
    return "\n".join(lines)


def tell(findings: Sequence[Finding], fail_on: Severity | None, on_failure: str, when: str) -> bool:
    """Raise :class:`BatchNormStateError` for the ``findings`` at ``fail_on`` or worse (``on_failure="raise"``)
    and log the others, or (``"warn"``, ``"stop"``) log them all; whether any is at ``fail_on`` or worse."""
    failing = [f for f in findings if fail_on is not None and f.severity >= fail_on]
    for finding in findings:
        if on_failure != "raise" or finding not in failing:
            LOG.log(
                LEVELS.get(finding.severity, logging.INFO), "%s", describe([finding], when).partition("\n")[2].strip()
            )
    if failing and on_failure == "raise":
        raise BatchNormStateError(describe(failing, when), failing)
    return bool(failing)


class Monitor:
    """Judges the snapshots of one model in training; tells each finding once (raised or logged)."""

    def __init__(
        self,
        framework: Framework,
        *,
        after_steps: int = 50,
        every: int | None = 10,
        on_failure: str = "raise",
        frozen: str | Iterable[str] = (),
        settings: Settings | None = None,
        label: str = "the model in training",
        stale_cause: str = "",
    ) -> None:
        if not isinstance(after_steps, int) or isinstance(after_steps, bool) or after_steps < 1:
            raise ValueError(f"after_steps: a whole number of steps >= 1, not {after_steps!r}")
        if every is not None and (not isinstance(every, int) or isinstance(every, bool) or every < 1):
            raise ValueError(f"every: a whole number of steps >= 1 (or None: only every after_steps), not {every!r}")
        if on_failure not in ON_FAILURE:
            raise ValueError(f"on_failure: one of {', '.join(map(repr, ON_FAILURE))}, not {on_failure!r}")
        self.framework = framework
        self.after_steps, self.every, self.on_failure = after_steps, every, on_failure
        self.declared = frozen_globs(frozen)
        self.settings = settings or Settings()
        self.label = label
        self.stale_cause = stale_cause  # why a trainable layer's statistics stand still, in the framework's words
        self.steps = 0
        self.findings: list[Finding] = []  # every finding told so far, in order
        self.stop_requested = False  # on_failure="stop" and a failing finding
        self._window: ModelFile | None = None  # the snapshot the current window started from
        self._told: set[tuple[str, str | None]] = set()
        self._notes: set[str] = set()

    def start(self, layers: Iterable[LiveLayer]) -> None:
        """Take the snapshot that the first window starts from (the model before the guard's first step)."""
        self._window = snapshot(layers, self.framework, self.steps, self.label)

    def count(self, layers: Callable[[], Iterable[LiveLayer]]) -> bool:
        """Count one optimizer step and judge ``layers()`` when due; True when the training should stop."""
        self.steps += 1
        if self.due(self.steps):
            self.judge(layers())
        return self.stop_requested

    def due(self, steps: int) -> bool:
        """Whether step ``steps`` is one the monitor judges."""
        return steps % self.after_steps == 0 or (self.every is not None and steps % self.every == 0)

    def judge(self, layers: Iterable[LiveLayer]) -> list[Finding]:
        """Judge the model after ``self.steps`` steps (``layers``: its BN layers now); tell what is new."""
        now = snapshot(layers, self.framework, self.steps, self.label)
        found: list[Finding] = []
        whole = self.steps % self.after_steps == 0
        inspect = self._selected(None if whole else HEALTH)
        if inspect is not None:
            found += analyse(now, inspect, keep_values=False, live=True).findings
        window = self._selected(WINDOW)
        if whole and self._window is not None and window is not None:
            between = f"between step {self._window_step} and step {self.steps}"
            stale = {layer for code, layer in [*self._told, *((f.code, f.layer) for f in found)] if code == "BN002"}
            diff = compare(self._window, now, window, self.declared, between, "frozen=").findings
            found += [f for f in diff if not (f.code == "BN201" and f.layer in stale)]  # BN002 says more
        if whole:
            self._window = now
        return self._tell([self._with_cause(finding, now) for finding in found])

    def _with_cause(self, finding: Finding, now: ModelFile) -> Finding:
        """A finding that a trainable layer's statistics stand still, with the framework's cause."""
        hints = now.hints.get(finding.layer or "", NO_HINTS)
        if finding.code in ("BN002", "BN201") and self.stale_cause and hints.trainable:
            return replace(finding, message=f"{finding.message} — {self.stale_cause}")
        return finding

    @property
    def _window_step(self) -> int:
        return self._window.step.count if self._window is not None and self._window.step is not None else 0

    def _selected(self, codes: tuple[str, ...] | None) -> Settings | None:
        """The settings that run ``codes`` (None: every inspect rule) as far as the user's select and ignore
        allow; None when they allow none of them."""
        if codes is None:
            return self.settings
        wanted = tuple(code for code in codes if self.settings.wants(code))
        return replace(self.settings, select=wanted, ignore=()) if wanted else None

    def note(self, message: str) -> None:
        """Log a warning that no rule makes (what a framework's adapter sees itself), once."""
        if message not in self._notes:
            self._notes.add(message)
            LOG.warning("bncheck: %s", message)

    def _tell(self, found: list[Finding]) -> list[Finding]:
        new = []
        for finding in found:
            key = (finding.code, finding.layer)
            if key not in self._told:
                self._told.add(key)
                new.append(finding)
        self.findings += new
        if tell(new, self.settings.fail_on, self.on_failure, self._when) and self.on_failure == "stop":
            self.stop_requested = True
            LOG.error("bncheck: stopping the training after %d step(s)", self.steps)
        return new

    @property
    def _when(self) -> str:
        return f"after {self.steps} training step(s)"


class Guard:
    """What a framework's guard shows of its :class:`Monitor`."""

    monitor: Monitor

    @property
    def findings(self) -> list[Finding]:
        """Every finding told so far (raised or logged)."""
        return self.monitor.findings

    @property
    def stop_requested(self) -> bool:
        """``on_failure="stop"`` and an error finding: the training should end."""
        return self.monitor.stop_requested
