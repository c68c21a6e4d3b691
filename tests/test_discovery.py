"""Which models a path holds: state-file directories, steps of one model, symbolic links, the Python API."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

import bncheck
from bncheck.errors import BncheckError

from .conftest import FIXTURES, realworld, run_cli

DENOISE = "denoise_bn_bug_index_meta/models/trained"
STEPS = FIXTURES / "diff" / "no_updates"  # one model saved by TensorFlow at step 30 (a) and step 40 (b)


def _json(*args: str, cwd: Path | None = None) -> tuple[int, list[dict]]:
    result = run_cli("inspect", "--format", "json", *args, cwd=cwd)
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, json.loads(result.stdout)["files"] if result.stdout else []


def _copy(source: Path, target: Path, rename: tuple[str, str] | None = None) -> Path:
    """The checkpoint files of ``source`` (not its state file) in ``target``, optionally renamed."""
    target.mkdir(parents=True, exist_ok=True)
    for file in source.iterdir():
        if file.name != "checkpoint":
            shutil.copy(file, target / (file.name.replace(*rename) if rename else file.name))
    return target


def _state(directory: Path, latest: str, *listed: str) -> None:
    lines = [f'model_checkpoint_path: "{latest}"'] + [f'all_model_checkpoint_paths: "{p}"' for p in listed]
    (directory / "checkpoint").write_text("\n".join(lines) + "\n")


def _steps(directory: Path) -> Path:
    """A training directory as tf.compat.v1.train.Saver leaves it: two steps of one model and a state file."""
    _copy(STEPS / "a", directory)
    _copy(STEPS / "b", directory)
    _state(directory, "model.ckpt-40", "model.ckpt-30", "model.ckpt-40")
    return directory


def test_a_state_file_does_not_hide_the_other_models_of_its_directory() -> None:
    trained = realworld(DENOISE)
    for given in (trained, trained.parent):
        status, files = _json(str(given))
        assert status == 2  # the data shards were never committed
        by_name = {Path(f["path"]).name: f for f in files}
        assert sorted(by_name) == ["dncnn.ckpt", "mmd_gan.ckpt"], given
        assert (len(by_name["dncnn.ckpt"]["layers"]), len(by_name["mmd_gan.ckpt"]["layers"])) == (15, 27)


def test_older_steps_of_one_model_are_skipped_with_a_note_naming_them(tmp_path: Path) -> None:
    run = _steps(tmp_path / "export" / "run")
    for given in (run, run.parent):
        status, files = _json(str(given))
        (file,) = files
        assert status == 1 and file["step"] == 40 and file["path"] == str(run)
        assert any("model.ckpt-30" in note and "skipped" in note for note in file["notes"]), file["notes"]
    table = run_cli("inspect", str(run)).stdout
    assert "model.ckpt-30" in table


def test_steps_are_told_by_the_name_and_by_the_state_file(tmp_path: Path) -> None:
    run = tmp_path / "run"
    _copy(STEPS / "a", run, ("model.ckpt-30", "best"))
    _copy(STEPS / "b", run, ("model.ckpt-40", "last"))
    _copy(FIXTURES / "tf1_correct", run, ("model", "other"))  # another model in the same directory
    _state(run, "last", "best", "last")
    status, files = _json(str(run))
    assert status == 1
    by_name = {Path(f["path"]).name: f for f in files}
    assert sorted(by_name) == ["last", "other.ckpt-20"]
    assert any("best" in note for note in by_name["last"]["notes"])
    assert not any("skipped" in note for note in by_name["other.ckpt-20"]["notes"])


def test_a_state_file_naming_a_missing_checkpoint_is_noted_and_the_present_ones_used(tmp_path: Path) -> None:
    run = _copy(FIXTURES / "tf1_correct", tmp_path / "run")
    _state(run, "model.ckpt-99", "model.ckpt-99")
    status, files = _json(str(run))
    (file,) = files
    assert status == 0 and file["step"] == 20 and not file["errors"]
    assert any("model.ckpt-99" in note for note in file["notes"]), file["notes"]
    empty = tmp_path / "empty"
    empty.mkdir()
    _state(empty, "model.ckpt-99")
    result = run_cli("inspect", str(empty))
    assert result.returncode == 2 and "names checkpoint 'model.ckpt-99'" in result.stderr


def test_a_prefix_with_a_trailing_slash() -> None:
    status, files = _json(str(FIXTURES / "tf1_correct" / "model.ckpt-20") + "/")
    assert status == 0 and len(files[0]["layers"]) == 3 and not files[0]["errors"]


def test_api_diff_takes_one_frozen_glob_as_a_string() -> None:
    pair = FIXTURES / "diff" / "finetune_drift"
    report = bncheck.diff(str(pair / "a"), str(pair / "b"), frozen="batch_normalization_2")
    assert [f.layer for f in report.findings if f.code == "BN202"] == ["batch_normalization_2"]
    assert not any("matches no layer" in note for note in report.notes), report.notes


def _keras_directory(directory: Path, *sources: str) -> Path:
    directory.mkdir()
    for source in sources:
        shutil.copy(FIXTURES / "keras" / source / "model.keras", directory / f"{source}.keras")
    return directory


def test_api_inspect_of_a_directory_holding_one_model(tmp_path: Path) -> None:
    one = _keras_directory(tmp_path / "one", "k3_fit")
    report = bncheck.inspect(str(one))
    assert report.format.startswith("Keras") and report.layers


def test_api_inspect_of_a_directory_of_several_models_points_to_scan(tmp_path: Path) -> None:
    two = _keras_directory(tmp_path / "two", "k3_fit", "k3_nested")
    with pytest.raises(BncheckError, match=r"2 models.*bncheck\.scan"):
        bncheck.inspect(str(two))
    reports = bncheck.scan(str(two))
    assert [Path(r.path).name for r in reports] == ["k3_fit.keras", "k3_nested.keras"]
    assert all(r.layers and not r.errors for r in reports)


def test_api_scan_does_what_the_command_line_does(tmp_path: Path) -> None:
    run = _steps(tmp_path / "run")
    (report,) = bncheck.scan(str(run))
    assert report.step.count == 40 and any("model.ckpt-30" in note for note in report.notes)
    assert {f.code for f in report.findings} == {"BN002"}
    buggy = str(FIXTURES / "tf1_no_control_deps")
    assert {f.code for f in bncheck.scan(buggy)[0].findings} == {"BN002", "BN102"}  # the .meta beside it
    assert {f.code for f in bncheck.scan(buggy, graph=False)[0].findings} == {"BN002"}
    (excluded,) = bncheck.scan(str(tmp_path), exclude=("run",))
    assert "no model found" in excluded.errors[0]
    reports = bncheck.scan(str(realworld(DENOISE)))
    assert [Path(r.path).name for r in reports] == ["dncnn.ckpt", "mmd_gan.ckpt"]
    assert all(r.errors for r in reports)  # no data shards
    (missing,) = bncheck.scan(str(tmp_path / "nothing"))
    assert missing.errors and "no such file" in missing.errors[0]


def test_symlinked_model_directories_are_followed_each_real_directory_once(tmp_path: Path) -> None:
    outside = _copy(FIXTURES / "tf1_no_control_deps", tmp_path / "elsewhere" / "model")
    export = tmp_path / "export"
    _copy(FIXTURES / "tf1_correct", export / "good")
    os.symlink(outside, export / "linked")  # a model kept elsewhere
    os.symlink(export / "good", export / "alias")  # a second name for a directory of the scan
    os.symlink(export, export / "good" / "loop")  # a loop
    os.symlink(tmp_path, export / "up")  # a link back to an ancestor
    shutil.copy(FIXTURES / "keras" / "k3_fit" / "model.keras", outside.parent / "file.keras")
    os.symlink(outside.parent / "file.keras", export / "file.keras")  # a symlinked file, as before
    status, files = _json(str(export))
    assert status == 1
    paths = sorted(Path(f["path"]).relative_to(export).as_posix() for f in files)
    assert paths == ["file.keras", "good/model.ckpt-20", "linked/model.ckpt-20"]
