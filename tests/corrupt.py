"""Make damaged copies of real fixtures (test-only helpers for the corrupt corpus and the fuzzer)."""

from __future__ import annotations

import shutil
from pathlib import Path

from bncheck.readers.proto import tf_subset_pb2 as pb
from bncheck.readers.sstable import Table

from .conftest import FIXTURES, prefix_of
from .tablewriter import write_table


def copy_checkpoint(scenario: str, into: Path) -> str:
    """Copy the checkpoint files of a fixture scenario; return the copy's prefix."""
    prefix = prefix_of(FIXTURES / scenario)
    into.mkdir(parents=True, exist_ok=True)
    for file in Path(prefix).parent.glob(Path(prefix).name + ".*"):
        shutil.copy(file, into / file.name)
    return str(into / Path(prefix).name)


def rewrite_entry(prefix: str, name: str, **changes: object) -> None:
    """Rewrite one BundleEntryProto of a copied checkpoint's index (shape as a list of dims)."""
    index = Path(prefix + ".index")
    entries = []
    for key, value in Table(index.read_bytes(), str(index)).items():
        if key == name.encode():
            entry = pb.BundleEntryProto.FromString(value)
            for field, new in changes.items():
                if field == "shape":
                    del entry.shape.dim[:]
                    for size in new:  # type: ignore[attr-defined]
                        entry.shape.dim.add(size=size)
                else:
                    setattr(entry, field, new)
            value = entry.SerializeToString()
        entries.append((key, value))
    index.write_bytes(write_table(entries))
