"""Baselines: findings recorded in an earlier ``--format json`` report are known.

Known findings are still reported (marked as such) but do not count toward the exit
status, so a team can adopt bncheck on models with accepted problems and still fail
on new ones. A finding is identified by (rule code, model file, layer); the file is
compared by its real path, so ``dir``, ``./dir`` and ``dir/model.ckpt-20.index`` agree.
A report's relative paths are relative to the directory it was made in, which is
usually where it is kept: they are resolved against the baseline file's directory and
against the working directory, so a baseline matches from anywhere and in a checkout
elsewhere.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from .errors import InputError
from .report import Report
from .stores import scheme_of

Key = tuple[str, str, str | None]


def _key(code: str, path: str, layer: str | None) -> Key:
    return code, path if scheme_of(path) else os.path.realpath(path), layer


def _joined(base: str, path: str) -> str:
    """A report's path as a path from ``base``; a URL as it is."""
    return path if scheme_of(path) else os.path.join(base, path)


def load_baseline(path: Path) -> set[Key]:
    import json  # only with --baseline: the table output needs no json

    if not path.is_file():
        raise InputError(f"{path}: baseline is not a file")
    bases = {os.path.dirname(os.path.abspath(path)), os.getcwd()}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        keys = {
            _key(finding["code"], _joined(base, file.get("file") or file["path"]), finding.get("layer"))
            for file in data["files"]
            for finding in file["findings"]
            for base in bases
        }
    except OSError as exc:
        raise InputError(f"{path}: cannot read baseline ({exc.strerror})") from None
    except (ValueError, KeyError, TypeError):
        raise InputError(f"{path}: not a bncheck json report (make one with --format json)") from None
    return keys


def apply_baseline(reports: list[Report], known: set[Key]) -> list[Report]:
    """The reports, their findings listed in ``known`` marked as known."""
    if not known:
        return reports
    return [
        replace(
            report,
            findings=[
                replace(f, known=True) if _key(f.code, report.main_file, f.layer) in known else f
                for f in report.findings
            ],
        )
        for report in reports
    ]
