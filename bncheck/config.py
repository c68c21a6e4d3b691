"""Settings: what to check and how strictly; ``[tool.bncheck]`` in pyproject.toml.

The command line builds a :class:`Settings` from the file's values overlaid with its
own options (the command line wins). Unknown keys, rule codes and thresholds are
errors, so a typo in CI configuration cannot silently disable a check.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ConfigError
from .findings import Severity
from .stores import SCHEMES, Options, scheme_of
from .supervisor import TIMEOUT, Limits
from .thresholds import Thresholds

if TYPE_CHECKING:
    from .rules import Kind

Globs = tuple[tuple[str, tuple[str, ...]], ...]  # (glob, codes)


@dataclass(frozen=True)
class Settings:
    """What to check and how strictly. Codes are normalised (upper case; one string is one code) and checked."""

    fail_on: Severity | None = Severity.ERROR  # None: never fail on findings
    select: tuple[str, ...] = ()  # codes or prefixes; empty means all
    ignore: tuple[str, ...] = ()
    thresholds: Thresholds = field(default_factory=Thresholds)
    per_file_ignores: Globs = ()  # (path glob, codes)
    per_layer_ignores: Globs = ()  # (layer glob, codes)
    exclude: tuple[str, ...] = field(default=())  # globs skipped by directory scans
    remote: Options = field(default_factory=Options)  # how URLs are read
    limits: Limits = field(default_factory=Limits)  # the deadline and memory cap of reading one model
    scales: bool = False  # also summarise |gamma| and the amplification of each layer (what --format html draws)

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

    def runnable(self, kind: Kind, graph: bool = True) -> list[str]:
        """The codes of the ``kind`` rules this selection runs (``graph``: with a training graph)."""
        from .rules import Needs, of_kind

        return [
            rule.code for rule in of_kind(kind) if (graph or rule.needs is not Needs.GRAPH) and self.wants(rule.code)
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
    posix = path if scheme_of(path) else Path(path).as_posix()
    return fnmatch.fnmatchcase(posix, pattern) or fnmatch.fnmatchcase(posix, f"*/{pattern}")


KEYS = (
    "select",
    "ignore",
    "fail-on",
    "thresholds",
    "per-file-ignores",
    "per-layer-ignores",
    "exclude",
    "timeout",
    "memory-limit",
    "remote",
)
REMOTE_KEYS = ("timeout", "download-limit", "storage-options")
FAIL_ON = (*(severity.label for severity in sorted(Severity, reverse=True)), "never")  # error ... never


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
    import tomllib  # only when there is a file to read

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
        remote=remote_options(table.get("remote", {}), origin),
        limits=limits(table.get("timeout", TIMEOUT), table.get("memory-limit"), origin),
    )


def limits(timeout: Any, memory: Any, origin: str) -> Limits:
    """``timeout`` (seconds of work per model; 0: read in bncheck's own process, without deadline or cap) and
    ``memory-limit`` (MiB a reading worker may allocate; 0: no cap; default: half of the machine's memory)."""
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 <= timeout <= 86400:
        raise ConfigError(f"{origin}: timeout must be a number of seconds in [0, 86400] (0: none), not {timeout!r}")
    if memory is not None and (isinstance(memory, bool) or not isinstance(memory, int) or memory < 0):
        raise ConfigError(f"{origin}: memory-limit must be a number of MiB (0: none), not {memory!r}")
    return Limits(float(timeout), memory)


def remote_options(table: Any, origin: str) -> Options:
    """``[tool.bncheck.remote]``: ``timeout`` (seconds per request), ``download-limit`` (bytes a server that
    ignores Range may send whole) and ``storage-options`` (a table per scheme, given to its filesystem)."""
    if not isinstance(table, dict):
        raise ConfigError(f"{origin}: 'remote' must be a table")
    for key in table:
        if key not in REMOTE_KEYS:
            raise ConfigError(
                f"{origin}: unknown key '{key}' in [tool.bncheck.remote] (known: {', '.join(REMOTE_KEYS)})"
            )
    timeout, limit = table.get("timeout", Options.timeout), table.get("download-limit", Options.download_limit)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout <= 3600:
        raise ConfigError(f"{origin}: remote timeout must be a number of seconds in (0, 3600], not {timeout!r}")
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise ConfigError(f"{origin}: remote download-limit must be a number of bytes (0: none), not {limit!r}")
    stores = table.get("storage-options", {})
    if not isinstance(stores, dict) or not all(isinstance(v, dict) for v in stores.values()):
        raise ConfigError(f"{origin}: remote storage-options must be a table of tables, one per scheme (s3, gs...)")
    for scheme in stores:
        if scheme not in SCHEMES:
            raise ConfigError(f"{origin}: storage-options for unknown scheme '{scheme}' (known: {', '.join(SCHEMES)})")
    return Options(float(timeout), limit, {scheme: dict(options) for scheme, options in stores.items()})
