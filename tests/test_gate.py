"""bncheck as a CI gate: directory scans, configuration, thresholds, baselines, exit codes."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from .conftest import FIXTURES, run_cli

BUGGY = FIXTURES / "tf1_no_control_deps"
CORRECT = FIXTURES / "tf1_correct"


def _export(tmp_path: Path) -> Path:
    """An export directory: three checkpoints (one with a state file), nested."""
    export = tmp_path / "export"
    shutil.copytree(BUGGY, export / "run1")  # has a checkpoint state file
    (export / "good").mkdir(parents=True)
    for file in CORRECT.glob("model.ckpt-20.*"):
        shutil.copy(file, export / "good" / file.name)
    shutil.copytree(FIXTURES / "tf1_nan_negvar", export / "deep" / "er" / "nan")
    return export


def _json(*args: str, cwd: Path | None = None) -> tuple[int, dict]:
    result = run_cli("inspect", "--format", "json", *args, cwd=cwd)
    return result.returncode, json.loads(result.stdout) if result.stdout else {}


def test_directory_scan_reads_each_checkpoint_once(tmp_path: Path) -> None:
    export = _export(tmp_path)
    status, data = _json(str(export))
    assert status == 1
    paths = sorted(Path(f["path"]).relative_to(export).as_posix() for f in data["files"])
    assert paths == ["deep/er/nan", "good/model.ckpt-20", "run1"]
    assert data["summary"]["files"] == 3


def test_exclude(tmp_path: Path) -> None:
    export = _export(tmp_path)
    status, data = _json("--exclude", "run1", "--exclude", "deep/*", str(export))
    assert status == 0 and [Path(f["path"]).name for f in data["files"]] == ["model.ckpt-20"]


def test_directory_without_models_is_exit_2(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("no model here")
    result = run_cli("inspect", str(tmp_path))
    assert result.returncode == 2 and "no model found" in result.stderr


def test_one_unreadable_file_does_not_hide_the_others(tmp_path: Path) -> None:
    export = _export(tmp_path)
    index = next((export / "good").glob("*.index"))
    index.write_bytes(index.read_bytes()[:-20])
    status, data = _json(str(export))
    assert status == 2
    by_name = {Path(f["path"]).name: f for f in data["files"]}
    assert by_name["model.ckpt-20"]["errors"] and not by_name["run1"]["errors"]
    assert {f["code"] for f in by_name["run1"]["findings"]} == {"BN002", "BN102"}


def test_exit_zero_and_fail_on() -> None:
    assert run_cli("inspect", "--exit-zero", str(BUGGY)).returncode == 0
    assert run_cli("inspect", "--exit-zero", str(BUGGY) + "-missing").returncode == 2
    assert run_cli("inspect", "--fail-on", "info", str(FIXTURES / "tf1_value_oddities")).returncode == 1
    assert run_cli("inspect", "--ignore", "BN011", str(FIXTURES / "tf1_value_oddities")).returncode == 0


def test_thresholds_on_the_command_line() -> None:
    oddities = str(FIXTURES / "tf1_value_oddities")
    _, data = _json("--threshold", "amplification=5000", oddities)
    assert "BN007" not in {f["code"] for f in data["files"][0]["findings"]}
    _, data = _json("--threshold", "amplification=0.01", "--select", "BN007", oddities)
    assert len(data["files"][0]["findings"]) == 5  # every layer but the one whose shapes disagree
    result = run_cli("inspect", "--threshold", "nonsense=1", oddities)
    assert result.returncode == 2 and "unknown threshold 'nonsense'" in result.stderr


def _project(tmp_path: Path, toml: str) -> Path:
    (tmp_path / "pyproject.toml").write_text(toml)
    shutil.copytree(BUGGY, tmp_path / "model")
    return tmp_path


def test_pyproject_configuration_and_command_line_precedence(tmp_path: Path) -> None:
    project = _project(tmp_path, '[tool.bncheck]\nignore = ["BN002", "BN1"]\n')
    assert run_cli("inspect", "model", cwd=project).returncode == 0  # the file silences BN002 and BN102
    assert run_cli("inspect", "--ignore", "BN010", "model", cwd=project).returncode == 1  # the command line wins
    (project / "sub").mkdir()
    assert run_cli("inspect", "../model", cwd=project / "sub").returncode == 0  # nearest pyproject.toml upward


def test_per_layer_and_per_file_ignores(tmp_path: Path) -> None:
    project = _project(
        tmp_path,
        '[tool.bncheck]\n[tool.bncheck.per-layer-ignores]\n"batch_normalization_*" = ["BN002"]\n',
    )
    status, data = _json("--select", "BN002", "model", cwd=project)
    assert status == 1 and [f["layer"] for f in data["files"][0]["findings"]] == ["batch_normalization"]
    (project / "pyproject.toml").write_text('[tool.bncheck.per-file-ignores]\n"model/*" = ["BN0", "BN1"]\n')
    assert run_cli("inspect", "model", cwd=project).returncode == 0


def test_fail_on_and_thresholds_from_the_file(tmp_path: Path) -> None:
    shutil.copytree(FIXTURES / "tf1_barely_updated", tmp_path / "model")
    # the graph records momentum 0.999: after 3 steps 99.7% of 0/1 remains, so the tolerance is widened
    # unless barely-remaining is above that
    toml = 'fail-on = "warning"\n[thresholds]\nbarely-tolerance = 1e-9\nbarely-remaining = 1\n'
    (tmp_path / "bncheck.toml").write_text(toml)
    assert run_cli("inspect", "--config", "bncheck.toml", "model", cwd=tmp_path).returncode == 0
    (tmp_path / "bncheck.toml").write_text('fail-on = "warning"\n')
    assert run_cli("inspect", "--config", "bncheck.toml", "model", cwd=tmp_path).returncode == 1


@pytest.mark.parametrize(
    "toml, offending",
    [
        ('[tool.bncheck]\nselct = ["BN0"]\n', "unknown key 'selct'"),
        ('[tool.bncheck]\nignore = ["BN999"]\n', "unknown rule code 'BN999'"),
        ('[tool.bncheck]\nfail-on = "sometimes"\n', "fail-on must be one of"),
        ("[tool.bncheck.thresholds]\nampliffication = 3\n", "unknown threshold 'ampliffication'"),
        ("[tool.bncheck\n", "invalid TOML"),
    ],
)
def test_bad_configuration_is_exit_2_naming_the_problem(tmp_path: Path, toml: str, offending: str) -> None:
    project = _project(tmp_path, toml)
    result = run_cli("inspect", "model", cwd=project)
    assert result.returncode == 2 and offending in result.stderr and "Traceback" not in result.stderr


def test_baseline_silences_exactly_its_findings(tmp_path: Path) -> None:
    shutil.copytree(BUGGY, tmp_path / "model")
    shutil.copytree(FIXTURES / "tf1_nan_negvar", tmp_path / "other")
    baseline = tmp_path / "baseline.json"
    assert run_cli("inspect", "--format", "json", "-o", str(baseline), "model", cwd=tmp_path).returncode == 1
    result = run_cli("inspect", "--format", "json", "--baseline", str(baseline), "model", cwd=tmp_path)
    assert result.returncode == 0
    findings = json.loads(result.stdout)["files"][0]["findings"]
    assert len(findings) == 6 and all(f["known"] for f in findings)
    # a new problem elsewhere still fails, and is not marked known
    status, data = _json("--baseline", str(baseline), "model", "other", cwd=tmp_path)
    assert status == 1
    assert not any(f["known"] for f in data["files"][1]["findings"])
    broken = tmp_path / "broken.json"
    broken.write_text("{}")
    result = run_cli("inspect", "--baseline", str(broken), "model", cwd=tmp_path)
    assert result.returncode == 2 and "not a bncheck json report" in result.stderr


def test_symlink_loop_does_not_hang_a_scan(tmp_path: Path) -> None:
    export = _export(tmp_path)
    os.symlink(export, export / "loop")
    status, data = _json(str(export))
    assert status == 1 and data["summary"]["files"] == 3


def test_scan_reports_a_checkpoint_whose_index_is_lost(tmp_path: Path) -> None:
    export = _export(tmp_path)
    next((export / "good").glob("*.index")).unlink()
    status, data = _json(str(export))
    assert status == 2
    lost = [f for f in data["files"] if f["path"].endswith("good/model.ckpt-20")]
    assert lost and "index model.ckpt-20.index is missing" in lost[0]["errors"][0]


def test_meta_needs_a_single_model(tmp_path: Path) -> None:
    export = _export(tmp_path)
    result = run_cli("inspect", "--meta", str(BUGGY / "model.ckpt-20.meta"), str(export))
    assert result.returncode == 2 and "--meta names the graph of one model" in result.stderr


def test_recorded_momentum_does_not_make_healthy_statistics_barely_updated() -> None:
    """A fine-tune restarts the step count on warmed-up statistics: m**n alone proves nothing."""
    _, data = _json("--threshold", "barely-remaining=0.01", str(CORRECT))
    assert data["files"][0]["findings"] == []


def test_baseline_matches_however_the_path_is_spelled(tmp_path: Path) -> None:
    shutil.copytree(BUGGY, tmp_path / "model")
    baseline = tmp_path / "baseline.json"
    run_cli("inspect", "--format", "json", "-o", str(baseline), "model", cwd=tmp_path)
    for spelling in ("./model", str(tmp_path / "model"), "model/model.ckpt-20.index", "model/model.ckpt-20"):
        assert run_cli("inspect", "--baseline", str(baseline), spelling, cwd=tmp_path).returncode == 0, spelling


def test_diff_honours_per_layer_ignores(tmp_path: Path) -> None:
    pair = FIXTURES / "diff" / "no_updates"
    (tmp_path / "pyproject.toml").write_text('[tool.bncheck.per-layer-ignores]\n"batch_normalization*" = ["BN201"]\n')
    assert run_cli("diff", str(pair / "a"), str(pair / "b")).returncode == 1
    assert run_cli("diff", str(pair / "a"), str(pair / "b"), cwd=tmp_path).returncode == 0


@pytest.mark.parametrize(
    "setup, expected",
    [
        (lambda d: (d / "pyproject.toml").write_text('tool = "x"\n'), None),
        (lambda d: os.mkfifo(d / "fifo.toml"), "is not a file"),
    ],
    ids=["tool-not-a-table", "config-is-a-fifo"],
)
def test_odd_configuration_files(tmp_path: Path, setup, expected: str | None) -> None:
    shutil.copytree(BUGGY, tmp_path / "model")
    setup(tmp_path)
    args = ("--config", "fifo.toml") if expected else ()
    result = run_cli("inspect", *args, "model", cwd=tmp_path)
    assert "Traceback" not in result.stderr
    if expected:
        assert result.returncode == 2 and expected in result.stderr
    else:
        assert result.returncode == 1  # a pyproject.toml without [tool.bncheck] is no configuration


def test_baseline_that_is_a_fifo_is_refused(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "baseline.json")
    result = run_cli("inspect", "--baseline", str(tmp_path / "baseline.json"), str(BUGGY))
    assert result.returncode == 2 and "baseline is not a file" in result.stderr


def test_scan_of_more_models_than_open_files_allowed() -> None:
    """Each model's files are closed once it is analysed: a registry scan is not limited by RLIMIT_NOFILE."""
    import resource
    import subprocess
    import sys

    models = len(json.loads(run_cli("inspect", str(FIXTURES), "--format", "json").stdout)["files"])
    assert models > 50

    def few_files() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (24, 24))

    result = subprocess.run(
        [sys.executable, "-m", "bncheck", "inspect", str(FIXTURES), "--format", "json"],
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=few_files,
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert len(json.loads(result.stdout)["files"]) == models


@pytest.mark.parametrize(
    "args",
    [
        ("inspect", "--select", "BN2", str(BUGGY)),
        ("inspect", "--ignore", "BN0,BN1", str(BUGGY)),
        ("inspect", "--select", "BN1", "--no-graph", str(BUGGY)),
        (
            "diff",
            "--select",
            "BN0",
            str(FIXTURES / "diff" / "no_updates" / "a"),
            str(FIXTURES / "diff" / "no_updates" / "b"),
        ),
        (
            "diff",
            "--ignore",
            "BN2",
            str(FIXTURES / "diff" / "no_updates" / "a"),
            str(FIXTURES / "diff" / "no_updates" / "b"),
        ),
    ],
    ids=[
        "inspect-select-diff-rules",
        "inspect-ignore-all",
        "graph-rules-without-graph",
        "diff-select-value-rules",
        "diff-ignore-all",
    ],
)
def test_a_selection_that_runs_no_rule_is_exit_2(args: tuple[str, ...]) -> None:
    result = run_cli(*args)
    assert result.returncode == 2 and "no rule" in result.stderr and "Traceback" not in result.stderr, result.stderr


def test_a_selection_in_the_file_that_runs_no_rule_of_the_command_is_exit_2(tmp_path: Path) -> None:
    project = _project(tmp_path, '[tool.bncheck]\nselect = ["BN0", "BN1"]\n')
    pair = FIXTURES / "diff" / "no_updates"
    result = run_cli("diff", str(pair / "a"), str(pair / "b"), cwd=project)
    assert result.returncode == 2 and "no rule" in result.stderr and "pyproject.toml" in result.stderr


def test_codes_are_case_insensitive_everywhere(tmp_path: Path) -> None:
    from bncheck.config import Settings
    from bncheck.errors import ConfigError

    assert run_cli("inspect", "--select", "bn002", str(BUGGY)).returncode == 1
    assert run_cli("inspect", "--ignore", "bn002,bn1", str(BUGGY)).returncode == 0
    project = _project(
        tmp_path, '[tool.bncheck]\nignore = ["bn002"]\n[tool.bncheck.per-layer-ignores]\n"*" = ["bn1"]\n'
    )
    assert run_cli("inspect", "model", cwd=project).returncode == 0
    assert Settings(select=("bn002",)).wants("BN002") and not Settings(ignore=("bn0",)).wants("BN002")
    assert Settings(select="bn002").select == ("BN002",)  # one code as a string, not its characters
    assert Settings(per_layer_ignores=(("*", ("bn002",)),)).ignored_at("BN002", (), "batch_normalization")
    with pytest.raises(ConfigError, match="bn999"):
        Settings(ignore=("bn999",))


@pytest.mark.parametrize(
    "item, expected",
    [
        ("amplification=nan", "'amplification' must be a finite number > 0"),
        ("amplification=inf", "'amplification' must be a finite number > 0"),
        ("amplification=0", "'amplification' must be a finite number > 0"),
        ("dead_share=-1", "'dead_share' must be a finite number in [0, 1]"),
        ("dead-share=1.5", "'dead-share' must be a finite number in [0, 1]"),
        ("default-momentum=2", "'default-momentum' must be a finite number in [0, 1]"),
        ("barely_tolerance=-0.1", "'barely_tolerance' must be a finite number >= 0"),
    ],
)
def test_thresholds_are_range_checked(item: str, expected: str) -> None:
    result = run_cli("inspect", "--threshold", item, str(CORRECT))
    assert result.returncode == 2 and expected in result.stderr, result.stderr


def test_thresholds_in_the_file_are_range_checked(tmp_path: Path) -> None:
    from bncheck.config import Thresholds
    from bncheck.errors import ConfigError

    project = _project(tmp_path, "[tool.bncheck.thresholds]\ndead-share = -1\n")
    result = run_cli("inspect", "model", cwd=project)
    assert result.returncode == 2 and "'dead-share' must be a finite number in [0, 1]" in result.stderr
    assert "pyproject.toml" in result.stderr
    pair = FIXTURES / "diff" / "no_updates"
    assert run_cli("diff", "--rtol", "nan", str(pair / "a"), str(pair / "b")).returncode == 2
    with pytest.raises(ConfigError, match="stats_shift"):
        Thresholds(stats_shift=float("nan"))


def test_a_baseline_matches_from_another_working_directory(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(BUGGY, repo / "fixtures" / "x")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    made = run_cli("inspect", "--format", "json", "fixtures/x", cwd=repo)
    assert made.returncode == 1
    (repo / "b.json").write_text(made.stdout)
    baseline = str(repo / "b.json")
    assert run_cli("inspect", "--baseline", baseline, "fixtures/x", cwd=repo).returncode == 0
    assert run_cli("inspect", "--baseline", baseline, str(repo / "fixtures" / "x"), cwd=elsewhere).returncode == 0
    assert run_cli("inspect", "--baseline", "../repo/b.json", "../repo/fixtures/x", cwd=elsewhere).returncode == 0
    # a baseline kept below the directory it was made in still matches from there (CI runs at the root)
    (repo / "ci").mkdir()
    (repo / "ci" / "b.json").write_text(made.stdout)
    assert run_cli("inspect", "--baseline", "ci/b.json", "fixtures/x", cwd=repo).returncode == 0
    # and not another model
    shutil.copytree(BUGGY, repo / "fixtures" / "y")
    assert run_cli("inspect", "--baseline", baseline, str(repo / "fixtures" / "y"), cwd=elsewhere).returncode == 1


def _model_bytes(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


@pytest.mark.parametrize(
    "command, victim",
    [
        (("inspect", "m"), "m/model.ckpt-20.index"),
        (("inspect", "m"), "m/model.ckpt-20.data-00000-of-00001"),
        (("inspect", "m"), "m/model.ckpt-20.meta"),
        (("inspect", "m"), "m/checkpoint"),
        (("inspect", "."), "m/model.ckpt-20.index"),
        (("inspect", "m/model.ckpt-20"), "m/model.ckpt-20.meta"),
        (("inspect", "--meta", "g/graph.meta", "m/model.ckpt-20"), "g/graph.meta"),
        (("inspect", "k"), "k/model.keras"),
        (("diff", "k/model.keras", "m"), "m/model.ckpt-20.index"),
        (("diff", "m", "k/model.keras"), "k/model.keras"),
    ],
)
def test_output_naming_an_input_is_refused(tmp_path: Path, command: tuple[str, ...], victim: str) -> None:
    shutil.copytree(BUGGY, tmp_path / "m")
    (tmp_path / "g").mkdir()
    shutil.copy(BUGGY / "model.ckpt-20.meta", tmp_path / "g" / "graph.meta")
    (tmp_path / "k").mkdir()
    shutil.copy(FIXTURES / "keras" / "k3_fit" / "model.keras", tmp_path / "k")
    before = _model_bytes(tmp_path)
    result = run_cli(*command, "-o", victim, cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert "is one of the inputs" in result.stderr and Path(victim).name in result.stderr
    assert _model_bytes(tmp_path) == before
    os.link(tmp_path / victim, tmp_path / "hardlink")  # the same file under another name
    assert run_cli(*command, "-o", "hardlink", cwd=tmp_path).returncode == 2
    assert _model_bytes(tmp_path) == {**before, "hardlink": before[Path(victim).name]}


def test_output_beside_the_inputs_is_written(tmp_path: Path) -> None:
    shutil.copytree(BUGGY, tmp_path / "m")
    assert run_cli("inspect", "m", "--format", "json", "-o", "m/report.json", cwd=tmp_path).returncode == 1
    assert json.loads((tmp_path / "m" / "report.json").read_text())["summary"]["errors"] == 6
