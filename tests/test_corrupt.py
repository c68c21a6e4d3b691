"""The corrupt-input corpus: every damaged input is exit 2 with one clear message, fast, bounded."""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from bncheck.readers.bundle import Bundle

from .conftest import FIXTURES, ROOT
from .corrupt import copy_checkpoint, rewrite_entry

LIMIT_BYTES = 3 * 1024**3  # address space of the CLI process: a 10^15-element allocation cannot hide


def _limited() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (LIMIT_BYTES, LIMIT_BYTES))


def run_limited(*args: str, wrapper: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "80", "OPENBLAS_NUM_THREADS": "1"}
    return subprocess.run(
        [*wrapper, sys.executable, "-m", "bncheck", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        cwd=ROOT,
        preexec_fn=_limited,
    )


def _data(prefix: str) -> Path:
    return Path(Bundle(prefix).shard_path(0))


def _entry(prefix: str, name: str):
    return Bundle(prefix)._entry(name)


def truncate_index(prefix: str) -> str:
    index = Path(prefix + ".index")
    index.write_bytes(index.read_bytes()[: len(index.read_bytes()) // 2])
    return prefix


def zero_index(prefix: str) -> str:
    index = Path(prefix + ".index")
    index.write_bytes(bytes(len(index.read_bytes())))
    return prefix


def flip_index(prefix: str) -> str:
    index = Path(prefix + ".index")
    raw = bytearray(index.read_bytes())
    raw[len(raw) // 3] ^= 0x40
    index.write_bytes(bytes(raw))
    return prefix


def wrong_magic(prefix: str) -> str:
    index = Path(prefix + ".index")
    raw = bytearray(index.read_bytes())
    raw[-1] ^= 0xFF
    index.write_bytes(bytes(raw))
    return prefix


def empty_index(prefix: str) -> str:
    Path(prefix + ".index").write_bytes(b"")
    return prefix


def truncate_data(prefix: str) -> str:
    data = _data(prefix)
    data.write_bytes(data.read_bytes()[:100])
    return prefix


def zero_data(prefix: str) -> str:
    data = _data(prefix)
    data.write_bytes(bytes(len(data.read_bytes())))
    return prefix


def flip_data(prefix: str) -> str:
    entry = _entry(prefix, "batch_normalization/moving_mean")
    data = _data(prefix)
    raw = bytearray(data.read_bytes())
    raw[entry.offset] ^= 0x01
    data.write_bytes(bytes(raw))
    return prefix


def empty_data(prefix: str) -> str:
    _data(prefix).write_bytes(b"")
    return prefix


def missing_shard(prefix: str) -> str:
    _data(prefix).unlink()
    return prefix


def entry_past_the_end(prefix: str) -> str:
    rewrite_entry(prefix, "batch_normalization/moving_variance", offset=10**9)
    return prefix


def absurd_shape(prefix: str) -> str:
    rewrite_entry(prefix, "batch_normalization/moving_variance", shape=[10**15])
    return prefix


def absurd_size(prefix: str) -> str:
    rewrite_entry(prefix, "batch_normalization/moving_variance", shape=[10**15], size=4 * 10**15)
    return prefix


def unknown_dtype(prefix: str) -> str:
    rewrite_entry(prefix, "batch_normalization/moving_variance", dtype=21)  # DT_VARIANT
    return prefix


def state_file_names_missing_prefix(prefix: str) -> str:
    """A state file alone (beside other checkpoints it is a note and those are inspected)."""
    directory = Path(prefix).parent / "state_only"
    directory.mkdir()
    (directory / "checkpoint").write_text('model_checkpoint_path: "model.ckpt-99"\n')
    return str(directory)


def no_checkpoint_in_directory(prefix: str) -> str:
    directory = Path(prefix).parent / "empty"
    directory.mkdir()
    return str(directory)


def wrong_extension(prefix: str) -> str:
    target = Path(prefix).parent / "model.bin"
    target.write_bytes(b"\x00" * 64)
    return str(target)


def meta_is_not_a_metagraph(prefix: str) -> str:
    shutil.copy(prefix + ".index", prefix + ".meta")
    return prefix


def symlink_loop(prefix: str) -> str:
    loop = Path(prefix).parent / "loop.ckpt.index"
    os.symlink(loop, loop)
    return str(loop)


CORPUS: dict[str, tuple[Callable[[str], str], str]] = {
    "truncated index": (truncate_index, "not a valid checkpoint index"),
    "zeroed index": (zero_index, "not a valid checkpoint index"),
    "bit-flipped index": (flip_index, ".index"),
    "wrong magic": (wrong_magic, "wrong magic number"),
    "empty index": (empty_index, "shorter than the 48-byte footer"),
    "truncated data": (truncate_data, "past the end of the"),
    "zeroed data": (zero_data, "checksum mismatch in variable"),
    "bit-flipped data": (flip_data, "checksum mismatch in variable 'batch_normalization/moving_mean'"),
    "empty data": (empty_data, "past the end of the 0-byte file"),
    "missing shard": (missing_shard, "data file missing"),
    "entry past the end": (entry_past_the_end, "past the end of the"),
    "absurd shape": (absurd_shape, "claims shape [1000000000000000]"),
    "absurd shape and size": (absurd_size, "past the end of the"),
    "unknown dtype": (unknown_dtype, "unsupported dtype"),
    "state file names a missing prefix": (state_file_names_missing_prefix, "names checkpoint 'model.ckpt-99'"),
    "directory without a checkpoint": (no_checkpoint_in_directory, "no model found"),
    "wrong extension": (wrong_extension, "not a file bncheck reads"),
    "meta that is not a MetaGraphDef": (meta_is_not_a_metagraph, ".meta"),
    "symlink loop": (symlink_loop, "loop.ckpt.index"),
}


@pytest.mark.parametrize("case", sorted(CORPUS))
def test_corrupt_input_is_exit_2_with_one_clear_message(case: str, tmp_path: Path) -> None:
    damage, expected = CORPUS[case]
    target = damage(copy_checkpoint("tf1_correct", tmp_path / "model"))
    started = time.monotonic()
    result = run_limited("inspect", target)
    elapsed = time.monotonic() - started
    assert result.returncode == 2, (case, result.stdout[-500:], result.stderr)
    assert expected in result.stderr, (case, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    messages = [line for line in result.stderr.splitlines() if line.startswith("bncheck: error:")]
    assert len(messages) == 1, result.stderr
    assert str(tmp_path) in messages[0] or Path(target).name in messages[0]  # names the file
    assert elapsed < 10, f"{case} took {elapsed:.1f} s"


def test_unreadable_file(tmp_path: Path) -> None:
    """Permissions. Root reads everything, so as root drop the capabilities that bypass them."""
    prefix = copy_checkpoint("tf1_correct", tmp_path / "model")
    os.chmod(prefix + ".index", 0o000)
    wrapper: tuple[str, ...] = ()
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        assert setpriv, "setpriv (util-linux) is needed to test permissions as root"
        wrapper = (setpriv, "--bounding-set", "-dac_override,-dac_read_search")
    result = run_limited("inspect", prefix, wrapper=wrapper)
    assert result.returncode == 2, result.stderr
    assert "cannot read" in result.stderr and "Permission denied" in result.stderr
    assert "Traceback" not in result.stderr


def test_fixture_corpus_has_no_allocation_beyond_the_file(tmp_path: Path) -> None:
    """A healthy run fits in the same address-space limit the corpus runs under."""
    assert run_limited("inspect", str(FIXTURES / "tf1_correct")).returncode == 0


def test_keras_file_with_string_statistics(tmp_path: Path) -> None:
    import h5py
    import numpy as np

    model = tmp_path / "model.h5"
    shutil.copy(FIXTURES / "keras" / "tfk_fit" / "model.h5", model)
    with h5py.File(model, "a") as h5:
        group = h5["model_weights/batch_normalization/batch_normalization"]
        name = next(k for k in group if k.startswith("moving_mean"))
        del group[name]
        group[name] = np.array([b"abc"] * 4)
    result = run_limited("inspect", "--format", "json", str(model))
    assert result.returncode == 2 and "holds |S3 data, not numbers" in result.stderr
    assert "Traceback" not in result.stderr


def test_keras_config_with_nan_momentum(tmp_path: Path) -> None:
    import zipfile

    source = FIXTURES / "keras" / "k3_fit" / "model.keras"
    model = tmp_path / "model.keras"
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(model, "w") as new:
        for item in old.infolist():
            data = old.read(item)
            if item.filename == "config.json":
                data = data.replace(b'"momentum": 0.8', b'"momentum": NaN')
                assert b"NaN" in data
            new.writestr(item, data)
    result = run_limited("inspect", "--format", "json", str(model))
    assert result.returncode == 0, result.stderr
