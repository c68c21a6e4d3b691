"""Machine formats for CI: SARIF 2.1.0 (validated against the official schema) and GitHub annotations."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest

from .conftest import FIXTURES, SCENARIOS, run_cli

SCHEMA = json.loads((Path(__file__).parent / "data" / "sarif-schema-2.1.0.json").read_text())
BUGGY = str(FIXTURES / "tf1_no_control_deps")
GITHUB_LINE = re.compile(r"^::(error|warning|notice) file=([^,]+),line=1,title=([^:]+)::(.+)$")


def sarif(*args: str) -> dict:
    result = run_cli("inspect", "--format", "sarif", *args)
    assert result.returncode in (0, 1, 2), result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_sarif_of_every_fixture_validates(scenario: str) -> None:
    jsonschema.Draft4Validator(SCHEMA).validate(sarif(str(FIXTURES / scenario)))


def test_sarif_results_carry_rules_locations_and_fingerprints() -> None:
    log = sarif(BUGGY)
    run = log["runs"][0]
    rules = {rule["id"]: rule for rule in run["tool"]["driver"]["rules"]}
    assert rules["BN002"]["name"] == "stats-never-updated"
    assert rules["BN002"]["defaultConfiguration"]["level"] == "error"
    assert "UPDATE_OPS" in rules["BN002"]["help"]["text"]
    results = run["results"]
    assert len(results) == 6 and {r["ruleId"] for r in results} == {"BN002", "BN102"}
    location = results[0]["locations"][0]
    assert location["physicalLocation"]["artifactLocation"]["uri"] == "fixtures/tf1_no_control_deps/model.ckpt-20.index"
    assert location["physicalLocation"]["region"]["startLine"] == 1
    assert location["logicalLocations"][0]["name"] == "batch_normalization"
    assert results[0]["message"]["text"].startswith("batch_normalization: ")
    assert run["tool"]["driver"]["rules"][results[0]["ruleIndex"]]["id"] == "BN002"
    fingerprints = [r["partialFingerprints"]["bncheckFinding/v1"] for r in results]
    assert len(set(fingerprints)) == 6  # differ across layers and rules
    assert fingerprints == [r["partialFingerprints"]["bncheckFinding/v1"] for r in sarif(BUGGY)["runs"][0]["results"]]


def test_sarif_reports_unreadable_inputs_as_failed_execution(tmp_path: Path) -> None:
    log = sarif(str(tmp_path / "missing.ckpt"))
    jsonschema.Draft4Validator(SCHEMA).validate(log)
    invocation = log["runs"][0]["invocations"][0]
    assert invocation["executionSuccessful"] is False
    assert "no such file" in invocation["toolExecutionNotifications"][0]["message"]["text"]


def test_github_annotations_parse() -> None:
    result = run_cli("inspect", "--format", "github", BUGGY, str(FIXTURES / "tf1_nan_negvar"))
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    parsed = [GITHUB_LINE.match(line) for line in lines]
    assert all(parsed), lines
    kinds = [(m[1], m[3]) for m in parsed]
    assert ("error", "BN002 stats-never-updated") in kinds
    assert ("warning", "BN005 non-positive-variance") in kinds  # the zero-variance channel
    assert parsed[0][2] == "fixtures/tf1_no_control_deps/model.ckpt-20.index"
    assert parsed[0][4].startswith("batch_normalization: moving_mean all 0")


def test_format_does_not_change_the_exit_status() -> None:
    statuses = {
        fmt: run_cli("inspect", "--format", fmt, BUGGY).returncode for fmt in ("table", "json", "sarif", "github")
    }
    assert set(statuses.values()) == {1}


def test_long_tables_print_in_pieces_that_read_as_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """--all on many layers prints the table ROWS_PER_TABLE rows at a time; the text is that of one table."""
    import io

    import bncheck
    from bncheck.render import table

    report = bncheck.inspect(str(FIXTURES / "tf1_many_vars"))
    diff = bncheck.diff(str(FIXTURES / "diff" / "no_updates" / "a"), str(FIXTURES / "diff" / "no_updates" / "b"))

    def texts() -> tuple[str, str]:
        out, out_diff = io.StringIO(), io.StringIO()
        table.render([report], out, show_all=True)
        table.render_diff(diff, out_diff, show_all=True)
        return out.getvalue(), out_diff.getvalue()

    monkeypatch.setattr(table, "ROWS_PER_TABLE", 10**9)
    whole = texts()
    monkeypatch.setattr(table, "ROWS_PER_TABLE", 7)
    assert texts() == whole
    assert sum(" gbmv " in line for line in whole[0].splitlines()) == len(report.layers) == 2000  # a row each
