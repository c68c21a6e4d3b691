"""SARIF 2.1.0 for code-scanning services (GitHub code scanning accepts it).

One result per finding: the rule id, a level, the message naming the layer, a
location at line 1 of the model file (relative to the working directory) plus a
logical location for the layer, and a fingerprint that stays the same across runs
for the same (rule, file, layer). Files that could not be read become error
notifications of the invocation.
"""

from __future__ import annotations

import hashlib
import json
from typing import IO, Any

from .. import __version__
from ..findings import Finding, Severity, Statement
from ..report import Report
from ..rules import RULES
from .paths import relative_path, relative_uri

SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
LEVEL = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "note"}


def fingerprint(code: str, file: str, layer: str | None) -> str:
    return hashlib.sha256(f"{code}|{relative_path(file)}|{layer or ''}".encode()).hexdigest()[:32]


def _rule(code: str) -> dict[str, Any]:
    rule = RULES[code]
    paragraphs = [p.strip() for p in rule.doc.split("\n\n") if p.strip()]
    return {
        "id": code,
        "name": rule.name,
        "shortDescription": {"text": rule.summary},
        "fullDescription": {"text": " ".join(paragraphs[0].split()) if paragraphs else rule.summary},
        "help": {"text": f"{rule.doc}\n\n{rule.fix_text}"},
        "defaultConfiguration": {"level": LEVEL[rule.severity]},
        "properties": {"tags": ["batch-normalization"]},
    }


def _location(report: Report) -> dict[str, Any]:
    return {
        "physicalLocation": {
            "artifactLocation": {"uri": relative_uri(report.main_file)},
            "region": {"startLine": 1},
        }
    }


def _result(report: Report, finding: Finding, index: dict[str, int]) -> dict[str, Any]:
    file = report.main_file
    location = _location(report)
    if finding.layer is not None:
        location["logicalLocations"] = [
            {"name": finding.layer, "fullyQualifiedName": f"{relative_path(file)}::{finding.layer}", "kind": "object"}
        ]
    result: dict[str, Any] = {
        "ruleId": finding.code,
        "ruleIndex": index[finding.code],
        "level": LEVEL[finding.severity],
        "message": {"text": f"{finding.layer or '(model)'}: {finding.message}"},
        "locations": [location],
        "partialFingerprints": {"bncheckFinding/v1": fingerprint(finding.code, file, finding.layer)},
        "properties": {"fix": finding.fix},
    }
    if finding.known:
        result["baselineState"] = "unchanged"
    return result


def _statement(report: Report, statement: Statement) -> dict[str, Any]:
    """A model-wide condition (its findings are results, one per layer)."""
    uri = relative_uri(report.main_file)
    return {
        "uri": uri,
        "ruleId": statement.code,
        "level": LEVEL[statement.severity],
        "layers": statement.layers,
        "message": statement.message,
    }


def as_dict(reports: list[Report]) -> dict[str, Any]:
    codes = sorted(RULES)
    index = {code: i for i, code in enumerate(codes)}
    notifications = [
        {"level": "error", "message": {"text": error}, "locations": [_location(report)]}
        for report in reports
        for error in report.errors
    ]
    return {
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "bncheck",
                        "version": __version__,
                        "informationUri": "https://pypi.org/project/bncheck/",
                        "rules": [_rule(code) for code in codes],
                    }
                },
                "invocations": [
                    {"executionSuccessful": not notifications, "toolExecutionNotifications": notifications}
                ],
                "results": [_result(r, f, index) for r in reports for f in r.findings],
                "properties": {"statements": [_statement(r, s) for r in reports for s in r.statements]},
            }
        ],
    }


def render(reports: list[Report], stream: IO[str], show_all: bool = False) -> None:
    json.dump(as_dict(reports), stream, indent=2, allow_nan=False)
    stream.write("\n")
