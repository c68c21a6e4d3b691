"""The command line as a user runs it: paths, exit codes, json, table, no TensorFlow."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import FIXTURES, prefix_of, run_cli

CORRECT = FIXTURES / "tf1_correct"
BUGGY = FIXTURES / "tf1_no_control_deps"


def test_help_and_inspect_do_not_import_tensorflow() -> None:
    probe = (
        "import sys, runpy\n"
        "sys.argv = ['bncheck'] + sys.argv[1:]\n"
        "try:\n    runpy.run_module('bncheck', run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'tf_keras', 'torch'))\n"
        "print('HEAVY', heavy, 'proto' if 'google.protobuf' in sys.modules else '', "
        "'h5py' if 'h5py' in sys.modules else '')\n"
    )
    for args in (["--help"], ["inspect", str(CORRECT)]):
        out = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, text=True, timeout=60).stdout
        assert "HEAVY []" in out, out
    help_out = subprocess.run([sys.executable, "-c", probe, "--help"], capture_output=True, text=True).stdout
    assert help_out.rstrip().endswith("HEAVY []"), "--help must not import protobuf or h5py either"
    inspect_out = subprocess.run(
        [sys.executable, "-c", probe, "inspect", str(CORRECT)], capture_output=True, text=True, timeout=60
    ).stdout
    assert "h5py" not in inspect_out.splitlines()[-1], "a TF checkpoint needs no h5py"


@pytest.mark.parametrize(
    "path",
    [
        lambda: prefix_of(CORRECT),
        lambda: prefix_of(CORRECT) + ".index",
        lambda: prefix_of(CORRECT) + ".data-00000-of-00001",
        lambda: prefix_of(CORRECT) + ".meta",
        lambda: str(CORRECT),
    ],
    ids=["prefix", "index", "data", "meta", "directory"],
)
def test_every_path_form_reads_the_same_checkpoint(path) -> None:
    result = run_cli("inspect", "--format", "json", path())
    assert result.returncode == 0, result.stderr
    (file,) = json.loads(result.stdout)["files"]
    assert [layer["name"] for layer in file["layers"]] == [
        "batch_normalization",
        "batch_normalization_1",
        "batch_normalization_2",
    ]
    assert file["step"] == 20


def test_directory_with_one_prefix_and_no_state_file(tmp_path: Path) -> None:
    for file in Path(CORRECT).glob("model.ckpt-20.*"):
        shutil.copy(file, tmp_path)
    assert run_cli("inspect", str(tmp_path)).returncode == 0


def test_directory_with_two_prefixes_is_scanned(tmp_path: Path) -> None:
    for scenario in (CORRECT, BUGGY):
        for file in scenario.glob("model.ckpt-20.*"):
            shutil.copy(file, tmp_path / file.name.replace("model", scenario.name))
    result = run_cli("inspect", "--format", "json", str(tmp_path))
    assert result.returncode == 1
    assert len(json.loads(result.stdout)["files"]) == 2


def _write(path: Path, text: str, result: Path | None = None) -> Path:
    path.write_text(text)
    return result or path


@pytest.mark.parametrize(
    "make, expected",
    [
        (lambda d: d / "nope.ckpt", "no such file"),
        (lambda d: d, "no model found in this directory"),
        (lambda d: _write(d / "notes.txt", "hi"), "not a file bncheck reads"),
        (lambda d: _write(d / "checkpoint", 'model_checkpoint_path: "gone"\n', d), "names checkpoint 'gone'"),
    ],
    ids=["missing", "empty-dir", "wrong-extension", "state-file-names-missing-prefix"],
)
def test_bad_paths_exit_2_with_one_clear_message(tmp_path: Path, make, expected: str) -> None:
    result = run_cli("inspect", str(make(tmp_path)))
    assert result.returncode == 2
    assert expected in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_exit_codes_follow_fail_on() -> None:
    assert run_cli("inspect", str(CORRECT)).returncode == 0
    assert run_cli("inspect", str(BUGGY)).returncode == 1
    assert run_cli("inspect", "--fail-on", "never", str(BUGGY)).returncode == 0
    barely = str(FIXTURES / "tf1_barely_updated")  # warnings only
    assert run_cli("inspect", barely).returncode == 0
    assert run_cli("inspect", "--fail-on", "warning", barely).returncode == 1


def test_select_and_ignore() -> None:
    assert run_cli("inspect", "--ignore", "BN002", str(BUGGY)).returncode == 1  # BN102, its cause in the graph
    assert run_cli("inspect", "--ignore", "BN002,BN102", str(BUGGY)).returncode == 0
    assert run_cli("inspect", "--select", "BN00", str(BUGGY)).returncode == 1
    result = run_cli("inspect", "--select", "XX9", str(BUGGY))
    assert result.returncode == 2 and "XX9" in result.stderr


def test_json_shape_is_the_documented_interface() -> None:
    result = run_cli("inspect", "--format", "json", str(BUGGY), str(CORRECT))
    assert result.returncode == 1
    data = json.loads(result.stdout)
    assert data["version"] == 1
    assert {"errors", "warnings", "infos"} <= set(data["summary"])
    buggy, correct = data["files"]
    assert {"path", "format", "step", "layers", "findings"} <= set(buggy)
    assert {"name", "channels", "codes"} <= set(buggy["layers"][0])
    assert buggy["layers"][0]["codes"] == ["BN002", "BN102"]
    finding = buggy["findings"][0]
    assert {"code", "name", "severity", "layer", "message"} <= set(finding)
    assert (finding["code"], finding["name"], finding["severity"]) == ("BN002", "stats-never-updated", "error")
    assert correct["findings"] == [] and data["summary"]["errors"] == 6


def test_table_is_readable_at_80_columns_without_colour() -> None:
    result = run_cli("inspect", str(BUGGY))
    lines = result.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines)
    assert "\x1b[" not in result.stdout
    assert any("batch_normalization_1" in line and "BN002" in line for line in lines)
    assert any(line.startswith("BN002 stats-never-updated") for line in lines)
    assert "fix:" in result.stdout
    assert lines[-1].startswith("6 errors")


def test_output_file(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    result = run_cli("inspect", "--format", "json", "-o", str(out), str(BUGGY))
    assert result.returncode == 1 and result.stdout == ""
    assert json.loads(out.read_text())["summary"]["errors"] == 6


def test_large_models_collapse_healthy_layers() -> None:
    many = str(FIXTURES / "tf1_many_vars")
    collapsed = run_cli("inspect", many).stdout
    assert "layers without findings (--all lists them)" in collapsed
    assert len(run_cli("inspect", "--all", many).stdout.splitlines()) > 1000


def test_rules_command_documents_every_rule() -> None:
    listing = run_cli("rules").stdout
    assert all(f"BN0{n:02d}" in listing for n in range(1, 13))
    doc = run_cli("rules", "BN002").stdout
    assert "UPDATE_OPS" in doc and "training=True" in doc and "--ignore BN002" in doc
    assert run_cli("rules", "BN999").returncode == 2


def test_state_file_with_escaped_non_ascii_names(tmp_path: Path) -> None:
    for file in Path(CORRECT).glob("model.ckpt-20.*"):
        shutil.copy(file, tmp_path / file.name.replace("model.ckpt", "模型"))
    # TensorFlow's text-proto writer escapes non-ASCII bytes as octal
    (tmp_path / "checkpoint").write_text('model_checkpoint_path: "\\346\\250\\241\\345\\236\\213-20"\n')
    assert run_cli("inspect", str(tmp_path)).returncode == 0
    (tmp_path / "checkpoint").write_text('model_checkpoint_path: "a\\x"\n')
    result = run_cli("inspect", str(tmp_path))
    assert result.returncode == 2 and "unreadable model_checkpoint_path" in result.stderr
    assert "Traceback" not in result.stderr


def _closed_pipe_status(*args: str, stdout: bool, stderr: bool) -> subprocess.CompletedProcess[bytes]:
    """Run the CLI with stdout and/or stderr writing into a pipe whose reader is gone (`... | head -0`)."""
    import os

    read, write = os.pipe()
    os.close(read)
    try:
        return subprocess.run(
            [sys.executable, "-m", "bncheck", *args],
            stdout=write if stdout else subprocess.DEVNULL,
            stderr=write if stderr else subprocess.DEVNULL,
            env={**os.environ, "NO_COLOR": "1"},
            timeout=120,
        )
    finally:
        os.close(write)


@pytest.mark.parametrize(
    "args, status",
    [
        (("inspect", str(FIXTURES), "/nonexistent"), 2),
        (("inspect", "/nonexistent"), 2),
        (("inspect", str(BUGGY)), 1),
        (("inspect", "--format", "json", str(BUGGY)), 1),
        (("inspect", str(CORRECT)), 0),
        (("inspect", "--no-such-option", str(CORRECT)), 2),
        (("inspect", "--select", "XX9", str(CORRECT)), 2),
        (("diff", str(BUGGY), "/nonexistent"), 2),
        (("rules",), 0),
        (("rules", "BN999"), 2),
    ],
)
@pytest.mark.parametrize("closed", ["stdout", "stderr", "both"])
def test_exit_status_survives_closed_output_streams(args: tuple[str, ...], status: int, closed: str) -> None:
    result = _closed_pipe_status(*args, stdout=closed != "stderr", stderr=closed != "stdout")
    assert result.returncode == status


def _on_a_terminal(*args: str, stderr_to_terminal: bool = True) -> tuple[str, bytes]:
    """Run the CLI with stdout (and stderr) on a pseudo-terminal; what the terminal shows, and stderr if piped."""
    import os
    import pty

    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "bncheck", *args],
        stdout=follower,
        stderr=follower if stderr_to_terminal else subprocess.PIPE,
        env={**os.environ, "NO_COLOR": "1", "COLUMNS": "200"},
    )
    os.close(follower)
    shown = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the process closed the terminal
            break
        if not chunk:
            break
        shown += chunk
    os.close(leader)
    piped = process.stderr.read() if process.stderr else b""
    process.wait(timeout=120)
    return shown.decode(), piped


def test_errors_are_shown_once_on_a_terminal() -> None:
    missing = str(CORRECT) + "-missing"
    shown, _ = _on_a_terminal("inspect", str(CORRECT), missing)
    assert shown.count("no such file, directory or checkpoint prefix") == 1, shown
    shown, piped = _on_a_terminal("inspect", str(CORRECT), missing, stderr_to_terminal=False)
    assert shown.count("no such file") == 1 and b"bncheck: error:" in piped and b"no such file" in piped
    shown, _ = _on_a_terminal("inspect", "--format", "json", missing)  # json is for programs: stderr says it too
    assert "bncheck: error:" in shown
