"""Damaged copies of real checkpoints: a clear error naming what is wrong, exit 2."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bncheck.errors import IntegrityError
from bncheck.readers.bundle import Bundle

from .conftest import FIXTURES, prefix_of, run_cli


def _copy(scenario: str, tmp_path: Path) -> str:
    prefix = prefix_of(FIXTURES / scenario)
    for file in Path(prefix).parent.glob(Path(prefix).name + ".*"):
        shutil.copy(file, tmp_path / file.name)
    return str(tmp_path / Path(prefix).name)


def test_flipped_bit_in_a_bn_tensor_names_the_variable(tmp_path: Path) -> None:
    prefix = _copy("tf1_correct", tmp_path)
    name = "batch_normalization_1/moving_variance"
    entry = Bundle(prefix)._entry(name)
    data = Path(Bundle(prefix).shard_path(0))
    raw = bytearray(data.read_bytes())
    raw[entry.offset + 5] ^= 0x10
    data.write_bytes(bytes(raw))
    result = run_cli("inspect", prefix)
    assert result.returncode == 2
    assert f"checksum mismatch in variable '{name}'" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_data_shard_keeps_the_structure(tmp_path: Path) -> None:
    prefix = _copy("tf1_saver_trainable_only", tmp_path)
    Path(Bundle(prefix).shard_path(0)).unlink()
    result = run_cli("inspect", prefix)
    assert result.returncode == 2
    assert "data file missing" in result.stderr
    assert "BN001" in result.stdout  # missing statistics are visible from names alone


def test_truncated_and_garbage_index(tmp_path: Path) -> None:
    prefix = _copy("tf1_correct", tmp_path)
    index = Path(prefix + ".index")
    original = index.read_bytes()
    for damaged, expected in (
        (original[:-10], "not a valid checkpoint index"),
        (b"", "shorter than"),
        (b"\0" * 100, "wrong magic"),
    ):
        index.write_bytes(damaged)
        result = run_cli("inspect", prefix)
        assert result.returncode == 2, damaged[:10]
        assert expected in result.stderr and "Traceback" not in result.stderr


def test_flipped_bit_in_the_index_is_caught_by_the_block_checksum(tmp_path: Path) -> None:
    prefix = _copy("tf1_correct", tmp_path)
    index = Path(prefix + ".index")
    raw = bytearray(index.read_bytes())
    raw[40] ^= 0x01
    index.write_bytes(bytes(raw))
    result = run_cli("inspect", prefix)
    assert result.returncode == 2 and "checksum mismatch in index block" in result.stderr


def test_inputs_are_never_modified(tmp_path: Path) -> None:
    prefix = _copy("tf1_no_control_deps", tmp_path)
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in tmp_path.iterdir()}
    run_cli("inspect", "--format", "json", prefix)
    run_cli("inspect", str(tmp_path))
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in tmp_path.iterdir()} == before


def test_flipped_bit_among_tensors_read_at_once_names_that_variable(tmp_path: Path) -> None:
    prefix = _copy("tf1_correct", tmp_path)
    bundle = Bundle(prefix)
    names = [name for name in bundle.names() if name.startswith("batch_normalization_1/")]
    name = "batch_normalization_1/moving_mean"
    offset = bundle._entry(name).offset
    assert any(bundle._entry(other).offset + bundle._entry(other).size == offset for other in names)  # adjacent
    data = Path(bundle.shard_path(0))
    raw = bytearray(data.read_bytes())
    raw[offset + 2] ^= 0x01
    data.write_bytes(bytes(raw))
    damaged = Bundle(prefix)
    with pytest.raises(IntegrityError, match=f"checksum mismatch in variable '{name}'"):
        damaged.read_many(names)
