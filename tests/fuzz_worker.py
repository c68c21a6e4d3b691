"""Fuzz worker: reads one model path per line, inspects and renders it as ``bncheck inspect`` does (each model
in a supervised worker process, under a deadline), prints one verdict line: ``ok``, ``error`` (bncheck's own
message), ``deadline``, ``memory`` or ``crashed`` (the supervisor's: exit 2 too), or ``crash ...`` (anything else).

Runs in its own process so that a failure of the supervisor itself, a crash or a hang, is caught by the harness
instead of taking pytest down.
"""

from __future__ import annotations

import io
import sys
import traceback

from bncheck.config import Settings
from bncheck.errors import BncheckError
from bncheck.render import FORMATS, renderer
from bncheck.scanning import found_at, reports_of
from bncheck.supervisor import Limits

DEADLINE = 3.0  # seconds per model: the fixtures read in a tenth of that
SUPERVISOR = (
    ("did not finish reading", "deadline"),
    ("of memory bncheck allows", "memory"),
    ("crashed reading", "crashed"),
)


def verdict(path: str, settings: Settings) -> str:
    try:
        found = found_at(path, settings)
        reports = reports_of(found, settings) if isinstance(found, list) else [found]
        for fmt in FORMATS:
            renderer(fmt)(reports, io.StringIO(), True)
    except BncheckError:
        return "error"
    except BaseException as exc:
        where = traceback.extract_tb(exc.__traceback__)[-1]
        return f"crash {type(exc).__name__}: {str(exc)[-300:]!r} at {where.filename}:{where.lineno}"
    errors = [error for report in reports for error in report.errors]
    for needle, name in SUPERVISOR:
        if any(needle in error for error in errors):
            return name
    return "error" if errors else "ok"


def main() -> None:
    settings = Settings(limits=Limits(timeout=DEADLINE))
    for line in sys.stdin:
        sys.stdout.write(verdict(line.rstrip("\n"), settings).replace("\n", " ") + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
