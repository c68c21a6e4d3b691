"""Settings: what to check and how strictly; ``[tool.bncheck]`` in pyproject.toml.

The command line builds a :class:`Settings` from the file's values overlaid with its
own options (the command line wins). Unknown keys, rule codes and thresholds are
errors, so a typo in CI configuration cannot silently disable a check.
"""

from __future__ import annotations

import fnmatch
import math
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .model import Severity

# Valid range of each threshold: (low, high, low included). Shares and momentum are fractions; bounds are
# positive; tolerances may be 0. Every value must be finite.
RANGES: dict[str, tuple[float, float, bool]] = {
    "default_momentum": (0.0, 1.0, True),
    "default_epsilon": (0.0, math.inf, True),
    "barely_remaining": (0.0, 1.0, True),
    "barely_tolerance": (0.0, math.inf, True),
    "amplification": (0.0, math.inf, False),
    "mean_bound": (0.0, math.inf, False),
    "variance_bound": (0.0, math.inf, False),
    "variance_ratio": (1.0, math.inf, True),
    "dead_gamma": (0.0, math.inf, True),
    "dead_share": (0.0, 1.0, True),
    "change_rtol": (0.0, math.inf, True),
    "change_atol": (0.0, math.inf, True),
    "stats_shift": (0.0, math.inf, True),
}


def _check_range(name: str, value: float, origin: str, spelled: str | None = None) -> None:
    low, high, low_included = RANGES[name]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{origin}: threshold '{spelled or name}' must be a number, not {value!r}")
    inside = (value >= low if low_included else value > low) and value <= high
    if not (math.isfinite(value) and inside):
        if high == math.inf:
            valid = f"{'>=' if low_included else '>'} {low:g}"
        else:
            valid = f"in {'[' if low_included else '('}{low:g}, {high:g}]"
        raise ConfigError(f"{origin}: threshold '{spelled or name}' must be a finite number {valid}, not {value!r}")


@dataclass(frozen=True)
class Thresholds:
    """Numbers the value rules compare against (defaults documented in each rule; valid ranges in RANGES)."""

    default_momentum: float = 0.99  # Keras and tf.layers default when a file does not record it
    default_epsilon: float = 1e-3  # Keras and tf.layers default
    barely_remaining: float = 0.25  # BN006: share m**n of the initial value still in the stats
    barely_tolerance: float = 1e-2  # BN006: max |mean| and |var - 1| counted as "close to init"
    amplification: float = 1e3  # BN007: max |gamma| / sqrt(var + eps)
    mean_bound: float = 1e4  # BN008
    variance_bound: float = 1e6  # BN008
    variance_ratio: float = 1e6  # BN008: max var / median var across channels
    dead_gamma: float = 1e-3  # BN010: |gamma| at or below this is a dead channel
    dead_share: float = 0.5  # BN010: share of dead channels that is reported
    change_rtol: float = 0.0  # diff: an element changed when |b - a| > change_atol + change_rtol * |a|
    change_atol: float = 0.0
    stats_shift: float = 1.0  # BN204: max |b - a| / min(max |a|, max |b|) of a moving statistic

    def __post_init__(self) -> None:
        for name in self.names():
            _check_range(name, getattr(self, name), "Thresholds")

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    def updated(self, values: dict[str, Any], origin: str) -> Thresholds:
        changes = {}
        for key, value in values.items():
            name = key.replace("-", "_")
            if name not in self.names():
                raise ConfigError(f"{origin}: unknown threshold '{key}' (known: {', '.join(self.names())})")
            try:
                if isinstance(value, bool):
                    raise TypeError
                changes[name] = float(value)
            except (TypeError, ValueError):
                raise ConfigError(f"{origin}: threshold '{key}' must be a number, not {value!r}") from None
            _check_range(name, changes[name], origin, key)
        return replace(self, **changes)


Globs = tuple[tuple[str, tuple[str, ...]], ...]  # (glob, codes)


@dataclass(frozen=True)
class Settings:
    """What to check and how strictly. Codes are normalised (upper case; one string is one code) and checked."""

    fail_on: Severity | None = Severity.ERROR  # None: never fail on findings
    select: tuple[str, ...] = ()  # codes or prefixes; empty means all
    ignore: tuple[str, ...] = ()
    thresholds: Thresholds = Thresholds()
    per_file_ignores: Globs = ()  # (path glob, codes)
    per_layer_ignores: Globs = ()  # (layer glob, codes)
    exclude: tuple[str, ...] = field(default=())  # globs skipped by directory scans

    def __post_init__(self) -> None:
        def globs(pairs: Globs) -> Globs:
            return tuple((glob, check_codes(_strings(codes), "Settings")) for glob, codes in pairs)

        object.__setattr__(self, "select", check_codes(_strings(self.select), "Settings"))
        object.__setattr__(self, "ignore", check_codes(_strings(self.ignore), "Settings"))
        object.__setattr__(self, "per_file_ignores", globs(self.per_file_ignores))
        object.__setattr__(self, "per_layer_ignores", globs(self.per_layer_ignores))
        object.__setattr__(self, "exclude", _strings(self.exclude))

    def wants(self, code: str) -> bool:
        if self.select and not any(code.startswith(s) for s in self.select):
            return False
        return not any(code.startswith(s) for s in self.ignore)

    def runnable(self, kind: str, graph: bool = True) -> list[str]:
        """The codes of the ``kind`` rules ("inspect" or "diff") this selection runs (``graph``: with a graph)."""
        from .rules import RULES

        return [
            code
            for code, rule in RULES.items()
            if rule.kind == kind and (graph or not rule.needs_graph) and self.wants(code)
        ]

    def ignored_at(self, code: str, paths: tuple[str, ...], layer: str | None) -> bool:
        """Whether a per-file ignore (on any of the model's ``paths``) or a per-layer ignore silences ``code``."""
        for pattern, codes in self.per_file_ignores:
            if any(_matches_path(p, pattern) for p in paths) and any(code.startswith(c) for c in codes):
                return True
        for pattern, codes in self.per_layer_ignores:
            if layer is not None and fnmatch.fnmatchcase(layer, pattern) and any(code.startswith(c) for c in codes):
                return True
        return False


def _strings(value: str | Iterable[str]) -> tuple[str, ...]:
    """One string is one item, not its characters."""
    return (value,) if isinstance(value, str) else tuple(value)


def _matches_path(path: str, pattern: str) -> bool:
    posix = Path(path).as_posix()
    return fnmatch.fnmatchcase(posix, pattern) or fnmatch.fnmatchcase(posix, f"*/{pattern}")


KEYS = ("select", "ignore", "fail-on", "thresholds", "per-file-ignores", "per-layer-ignores", "exclude")
FAIL_ON = ("error", "warning", "info", "never")


def check_codes(codes: list[str] | tuple[str, ...], origin: str) -> tuple[str, ...]:
    """Upper-case codes or prefixes, each of which must match some rule."""
    if not codes:
        return ()
    from .rules import RULES

    result = []
    for raw in codes:
        if not isinstance(raw, str):
            raise ConfigError(f"{origin}: rule codes must be strings, not {raw!r}")
        code = raw.strip().upper()
        if not code or not any(known.startswith(code) for known in RULES):
            raise ConfigError(f"{origin}: unknown rule code '{raw}' (see 'bncheck rules')")
        result.append(code)
    return tuple(result)


def parse_fail_on(value: str, origin: str) -> Severity | None:
    if value not in FAIL_ON:
        raise ConfigError(f"{origin}: fail-on must be one of {', '.join(FAIL_ON)}, not {value!r}")
    return None if value == "never" else Severity.parse(value)


def find_pyproject(start: Path) -> Path | None:
    """The nearest pyproject.toml at or above ``start``."""
    for directory in (start, *start.parents):
        candidate = directory / "pyproject.toml"
        if candidate.is_file():
            return candidate
    return None


def load_file(path: Path, required: bool) -> dict[str, Any]:
    """The ``[tool.bncheck]`` table of ``path`` (empty if absent and not required)."""
    if not path.is_file():
        raise ConfigError(f"{path}: configuration is not a file")
    try:
        with open(path, "rb") as f:
            document = tomllib.load(f)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read configuration ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML ({exc})") from None
    tool = document.get("tool", {})
    table = tool.get("bncheck") if isinstance(tool, dict) else None
    if table is None and path.name != "pyproject.toml":
        table = document  # a dedicated bncheck.toml may hold the keys at top level
    if table is None:
        if required:
            raise ConfigError(f"{path}: no [tool.bncheck] table")
        return {}
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [tool.bncheck] must be a table")
    for key in table:
        if key not in KEYS:
            raise ConfigError(f"{path}: unknown key '{key}' in [tool.bncheck] (known: {', '.join(KEYS)})")
    return table


def settings_from(table: dict[str, Any], origin: str) -> Settings:
    """Settings from a validated ``[tool.bncheck]`` table."""

    def string_list(key: str) -> list[str]:
        value = table.get(key, [])
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{origin}: '{key}' must be a list of strings")
        return value

    def glob_table(key: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
        value = table.get(key, {})
        if not isinstance(value, dict):
            raise ConfigError(f"{origin}: '{key}' must be a table of glob = [codes]")
        pairs = [(glob, codes if isinstance(codes, list) else [codes]) for glob, codes in value.items()]
        return tuple((glob, check_codes(codes, origin)) for glob, codes in pairs)

    thresholds = table.get("thresholds", {})
    if not isinstance(thresholds, dict):
        raise ConfigError(f"{origin}: 'thresholds' must be a table")
    return Settings(
        fail_on=parse_fail_on(table.get("fail-on", "error"), origin),
        select=check_codes(string_list("select"), origin),
        ignore=check_codes(string_list("ignore"), origin),
        thresholds=Thresholds().updated(thresholds, origin),
        per_file_ignores=glob_table("per-file-ignores"),
        per_layer_ignores=glob_table("per-layer-ignores"),
        exclude=tuple(string_list("exclude")),
    )
