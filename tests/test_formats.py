"""A new format of one file is a reader function and one entry of readers/formats.py, nothing else: this test
adds NumPy's ``.npz`` (written by NumPy, read with ``allow_pickle=False``) that way and inspects, scans and
diffs such files as any other."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import bncheck
from bncheck.errors import FormatError
from bncheck.facts import ModelFile, Variable
from bncheck.readers import formats

NPZ = formats.FileFormat(
    "NumPy .npz archives",
    (".npz",),
    lambda path, signature: signature == "zip" and path.suffix == ".npz",
    "tests.test_formats:read_npz",
)


def read_npz(path: Path, shown: str) -> ModelFile:
    """The arrays of an ``.npz`` as variables named by their keys (the whole reader of the format)."""
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise FormatError(f"{shown}: not a readable .npz ({exc})") from None
    variables = tuple(
        Variable(key, key, str(archive[key].dtype), archive[key].shape, archive.__getitem__) for key in archive.files
    )
    return ModelFile(shown, "NumPy .npz", variables, close=archive.close)


@pytest.fixture
def npz_format(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(formats, "FILE_FORMATS", (NPZ, *formats.FILE_FORMATS))  # tried first: .npz is a zip too


def _save(path: Path, mean: float, gamma: float) -> Path:
    path.parent.mkdir(exist_ok=True)
    channels = np.ones(4, np.float32)
    np.savez(
        path,
        **{
            "bn/gamma": channels * gamma,
            "bn/beta": channels * 0.1,
            "bn/moving_mean": channels * mean,
            "bn/moving_variance": channels,
        },
    )
    return path


def test_a_format_added_by_its_entry_alone_is_inspected_scanned_and_diffed(npz_format: None, tmp_path: Path) -> None:
    stale = _save(tmp_path / "stale.npz", mean=0.0, gamma=1.5)
    trained = _save(tmp_path / "trained.npz", mean=0.3, gamma=1.5)
    report = bncheck.inspect(str(stale))
    assert report.format == "NumPy .npz" and [layer.name for layer in report.layers] == ["bn"]
    assert [f.code for f in report.findings] == ["BN002"]
    assert not bncheck.inspect(str(trained)).findings
    assert sorted(Path(r.path).name for r in bncheck.scan(str(tmp_path))) == ["stale.npz", "trained.npz"]
    later = _save(tmp_path / "later" / "stale.npz", mean=0.0, gamma=1.7)  # gamma trained on, the statistics not
    assert [f.code for f in bncheck.diff(str(stale), str(later)).findings] == ["BN201"]


def test_without_its_entry_the_format_is_not_read(tmp_path: Path) -> None:
    stale = _save(tmp_path / "stale.npz", mean=0.0, gamma=1.5)
    with pytest.raises(bncheck.errors.BncheckError):
        bncheck.inspect(str(stale))
