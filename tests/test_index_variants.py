"""Index layouts beyond what today's writer emits: many blocks, snappy, big-endian."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np

from bncheck.readers.bundle import Bundle
from bncheck.readers.proto import tf_subset_pb2 as pb
from bncheck.readers.sstable import Table

from .conftest import FIXTURES, prefix_of
from .tablewriter import write_table

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import tensorflow as tf


def _copy(scenario: str, tmp_path: Path) -> tuple[str, list[tuple[bytes, bytes]]]:
    prefix = prefix_of(FIXTURES / scenario)
    for file in Path(prefix).parent.glob(Path(prefix).name + ".*"):
        shutil.copy(file, tmp_path / file.name)
    copy = str(tmp_path / Path(prefix).name)
    entries = list(Table(Path(copy + ".index").read_bytes(), "index").items())
    return copy, entries


def test_many_vars_index_has_several_blocks() -> None:
    prefix = prefix_of(FIXTURES / "tf1_many_vars")
    table = Table(Path(prefix + ".index").read_bytes(), "index")
    assert len(table.block_handles()) >= 2
    assert len(Bundle(prefix).names()) > 1_000


def test_snappy_compressed_index_reads_like_tensorflow(tmp_path: Path) -> None:
    prefix, entries = _copy("tf1_correct", tmp_path)
    Path(prefix + ".index").write_bytes(write_table(entries, snappy=True, block_entries=7))
    reader = tf.train.load_checkpoint(prefix)  # TensorFlow itself accepts the copy
    bundle = Bundle(prefix)
    assert set(bundle.names()) == set(reader.get_variable_to_shape_map())
    for name in bundle.names():
        assert bundle.read(name).tobytes() == np.asarray(reader.get_tensor(name)).tobytes()


def test_big_endian_bundle_is_byteswapped(tmp_path: Path) -> None:
    """What a big-endian machine writes: header says BIG, data bytes swapped, CRCs of those bytes."""
    prefix, entries = _copy("tf1_dtypes", tmp_path)
    original = Bundle(prefix_of(FIXTURES / "tf1_dtypes"))
    data_path = Path(original.shard_path(0).replace(original.prefix, prefix))
    data = bytearray(data_path.read_bytes())
    rewritten = []
    for key, value in entries:
        if key == b"":
            header = pb.BundleHeaderProto.FromString(value)
            header.endianness = pb.BundleHeaderProto.BIG
            value = header.SerializeToString()
        elif key[0] != 0:
            name = key.decode()
            entry = pb.BundleEntryProto.FromString(value)
            array = original.read(name)
            if array.dtype != object and not entry.slices and original.info(name).dtype != "bfloat16":
                swapped = array.astype(array.dtype.newbyteorder(">")).tobytes()
                data[entry.offset : entry.offset + entry.size] = swapped
                from bncheck.readers.crc import crc32c, mask

                entry.crc32c = mask(crc32c(swapped))
                value = entry.SerializeToString()
        rewritten.append((key, value))
    data_path.write_bytes(bytes(data))
    Path(prefix + ".index").write_bytes(write_table(rewritten))
    bundle = Bundle(prefix)
    checked = 0
    for name in original.names():
        if original.info(name).dtype in ("float32", "float16", "float64", "int32", "int64"):
            assert np.array_equal(bundle.read(name), original.read(name), equal_nan=True), name
            checked += 1
    assert checked >= 6


def test_an_index_with_its_keys_out_of_order_still_finds_every_tensor(tmp_path: Path) -> None:
    """Names are found by bisection in a table's sorted keys; a damaged table whose keys are not in order (here
    reversed, the header first) is searched by a table of names instead: every tensor reads as in the original."""
    prefix, entries = _copy("tf1_many_vars", tmp_path)
    header = [entry for entry in entries if entry[0] == b""]
    tensors = [entry for entry in entries if entry[0] != b""]
    Path(prefix + ".index").write_bytes(write_table(header + tensors[::-1]))
    original, shuffled = Bundle(prefix_of(FIXTURES / "tf1_many_vars")), Bundle(prefix)
    assert shuffled.names() == original.names()[::-1] and len(original.names()) > 1_000
    names = original.names()[::97]
    assert all(name in shuffled for name in names) and "no/such/tensor" not in shuffled
    for mine, theirs in zip(shuffled.read_many(names), original.read_many(names), strict=True):
        assert mine.tobytes() == theirs.tobytes()
    assert all(shuffled.info(name) == original.info(name) for name in names)
