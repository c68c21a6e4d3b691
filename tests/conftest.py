"""Shared paths and helpers. TensorFlow is imported only by the tests that use it as oracle."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
REALWORLD = Path(os.environ.get("BNCHECK_REALWORLD", ROOT.parent / "shared" / "realworld"))
# The TF checkpoint scenarios of make_fixtures.py: directories holding a checkpoint index.
SCENARIOS = sorted(p.name for p in FIXTURES.iterdir() if p.is_dir() and any(p.glob("*.index")))


def prefix_of(directory: Path) -> str:
    """The checkpoint prefix a scenario directory holds (its only .index file)."""
    (index,) = directory.glob("*.index")
    return str(index)[: -len(".index")]


def realworld(relative: str) -> Path:
    path = REALWORLD / relative
    if not (path.exists() or Path(f"{path}.index").exists()):
        if os.environ.get("CI") or os.environ.get("BNCHECK_REQUIRE_REALWORLD"):
            pytest.fail(f"real-world corpus missing: {path}")
        pytest.skip(f"real-world corpus not found at {REALWORLD} (set BNCHECK_REALWORLD)")
    return path


def run_cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run the installed CLI in a fresh process, as a user would (from the repository by default)."""
    full_env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "80", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "bncheck", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=120,
        cwd=cwd or ROOT,
    )


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        help="rewrite tests/golden/ from today's output (also BNCHECK_UPDATE_GOLDEN=1)",
    )


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    """Whether the golden-output tests write their expected files instead of comparing with them."""
    return bool(request.config.getoption("--update-golden")) or os.environ.get("BNCHECK_UPDATE_GOLDEN") == "1"
