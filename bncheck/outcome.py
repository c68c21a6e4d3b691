"""What a run amounts to: the counts every output ends with, and the exit status of the gate."""

from __future__ import annotations

from collections.abc import Iterable

from .deltas import DiffReport
from .findings import Finding, Severity
from .report import Report


def severity_counts(findings: Iterable[Finding]) -> dict[str, int]:
    counts = dict.fromkeys(("errors", "warnings", "infos"), 0)
    for finding in findings:
        counts[_COUNTED[finding.severity]] += 1
    return counts


_COUNTED = {Severity.ERROR: "errors", Severity.WARNING: "warnings", Severity.INFO: "infos"}


def totals(reports: list[Report]) -> dict[str, int]:
    """The counts shown at the end of every inspect output."""
    findings = [f for r in reports for f in r.findings]
    return {
        "files": len(reports),
        "layers": sum(len(r.layers) for r in reports),
        **severity_counts(findings),
        "unreadable": sum(bool(r.errors) for r in reports),
        "known": sum(f.known for f in findings),
    }


def diff_totals(report: DiffReport) -> dict[str, int]:
    """The counts shown at the end of every diff output."""
    return {
        **severity_counts(report.findings),
        "paired": len(report.pairs),
        "changed": sum(bool(pair.changed()) for pair in report.pairs),
        "identical": sum(p.identical for p in report.pairs),
        "unpaired": len(report.only_a) + len(report.only_b),
        "unreadable": sum(bool(r.errors) for r in (report.a, report.b)),
    }


def exit_status(unreadable: bool, findings: list[Finding], fail_on: Severity | None) -> int:
    """0 clean, 1 findings (not known from a baseline) at or above ``fail_on``, 2 anything unreadable."""
    if unreadable:
        return 2
    if fail_on is not None and any(f.severity >= fail_on and not f.known for f in findings):
        return 1
    return 0
