"""The committed generated module is what protoc makes of the committed schema subset."""

from __future__ import annotations

import subprocess
import sys

from .conftest import ROOT


def test_generated_module_is_current() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts/gen_proto.py"), "--check"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
