"""Machine formats for CI: SARIF 2.1.0 (validated against the official schema) and GitHub annotations."""

from __future__ import annotations

import io
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


class _Writes(io.StringIO):
    """A stream that remembers its largest write."""

    largest = 0

    def write(self, text: str) -> int:
        self.largest = max(self.largest, len(text))
        return super().write(text)


def test_long_tables_are_written_row_by_row() -> None:
    """--all on 2,000 layers: each write holds a row or a paragraph, never a whole table or a piece of one
    (Rich wrote 500 rows at a time), so memory does not grow with the rows."""
    import bncheck
    from bncheck.render import table

    report = bncheck.inspect(str(FIXTURES / "tf1_many_vars"))
    out = _Writes()
    table.render([report], out, show_all=True)
    rows = [line for line in out.getvalue().splitlines() if line.startswith("block_")]
    assert len(rows) == len(report.layers) == 2000 and out.largest < 1000
    diff = bncheck.diff(str(FIXTURES / "diff" / "no_updates" / "a"), str(FIXTURES / "diff" / "no_updates" / "b"))
    out = _Writes()
    table.render_diff(diff, out, show_all=True)
    assert out.largest < 1000


def test_a_report_is_written_whole_or_not_at_all(tmp_path: Path) -> None:
    """-o writes a temporary file and renames it: a crash mid-report leaves the previous report, no debris."""
    from bncheck.cli import _write_whole

    report = tmp_path / "bncheck.sarif"
    report.write_text("previous report")

    def crash(stream: io.TextIOBase) -> None:
        stream.write('{"version": "2.1.0", "runs": [')
        raise RuntimeError("the renderer died")

    with pytest.raises(RuntimeError):
        _write_whole(str(report), crash)
    assert report.read_text() == "previous report"
    assert [p.name for p in tmp_path.iterdir()] == ["bncheck.sarif"]


def test_o_keeps_permissions_and_writes_through_a_link(tmp_path: Path) -> None:
    import os
    import stat

    real = tmp_path / "reports" / "bncheck.json"
    real.parent.mkdir()
    real.write_text("old")
    real.chmod(0o640)
    link = tmp_path / "latest.json"
    link.symlink_to(real)
    result = run_cli("inspect", "fixtures/tf2_fit", "--format", "json", "-o", str(link))
    assert result.returncode == 0, result.stderr
    assert link.is_symlink() and json.loads(real.read_text())["files"]
    assert stat.S_IMODE(os.stat(real).st_mode) == 0o640
    assert sorted(p.name for p in real.parent.iterdir()) == ["bncheck.json"]
    to_stdout = run_cli("inspect", "fixtures/tf2_fit", "--format", "json", "-o", "/dev/stdout")
    assert to_stdout.returncode == 0 and json.loads(to_stdout.stdout)["files"]  # a device: written directly


def test_a_fifo_a_device_or_a_socket_is_refused_at_once(tmp_path: Path) -> None:
    """Nothing blocks on a pipe nobody writes to: refused for what it is, exit 2; a scan still reads the rest."""
    import os
    import shutil
    import socket

    fifo = tmp_path / "model.pt"
    os.mkfifo(fifo)
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(tmp_path / "model.onnx"))
        for path, kind in [
            (fifo, "named pipe (FIFO)"),
            ("/dev/null", "character device"),
            (tmp_path / "model.onnx", "socket"),
        ]:
            result = run_cli("inspect", str(path))
            assert result.returncode == 2 and f"a {kind}, not a file: refused" in result.stderr, result.stderr
        shutil.copy(FIXTURES / "torch" / "eval_mode.pt", tmp_path)
        scan = run_cli("inspect", str(tmp_path), "--format", "json")
    assert scan.returncode == 2
    files = {Path(f["path"]).name: f for f in json.loads(scan.stdout)["files"]}
    assert files["eval_mode.pt"]["findings"] and "named pipe" in files["model.pt"]["errors"][0]
