"""GitHub Actions workflow commands: one ``::error``/``::warning``/``::notice`` line per finding.

Findings listed in a baseline are printed as notices; unreadable files as errors; a rule that
fired on every BN layer of a model adds one notice saying what that means.
"""

from __future__ import annotations

from typing import IO

from ..findings import Severity
from ..report import Report
from .paths import relative_path

COMMAND = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "notice"}


def _data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _property(text: str) -> str:
    return _data(text).replace(":", "%3A").replace(",", "%2C")


def render(reports: list[Report], stream: IO[str], show_all: bool = False) -> None:
    for report in reports:
        file = _property(relative_path(report.main_file))
        for error in report.errors:
            stream.write(f"::error file={file},line=1,title=bncheck::{_data(error)}\n")
        for finding in report.findings:
            command = "notice" if finding.known else COMMAND[finding.severity]
            title = f"{finding.code} {finding.name}" + (" (baseline)" if finding.known else "")
            message = f"{finding.layer or '(model)'}: {finding.message}"
            stream.write(f"::{command} file={file},line=1,title={_property(title)}::{_data(message)}\n")
        for statement in report.statements:  # model-wide: said once more, as a notice
            title = _property(f"{statement.code} on all {statement.layers} BN layers")
            stream.write(f"::notice file={file},line=1,title={title}::{_data(statement.message)}\n")
