"""Fuzz worker: reads one model path per line, inspects and renders it, prints one verdict line.

Runs in its own process so that a crash inside a C extension (h5py, protobuf) or a hang is
caught by the harness instead of taking pytest down.
"""

from __future__ import annotations

import io
import sys
import traceback

import bncheck
from bncheck.errors import BncheckError
from bncheck.render import FORMATS, renderer


def main() -> None:
    for line in sys.stdin:
        path = line.rstrip("\n")
        try:
            report = bncheck.inspect(path)
            for fmt in FORMATS:
                renderer(fmt)([report], io.StringIO(), True)
            verdict = "ok"
        except BncheckError:
            verdict = "error"
        except BaseException as exc:
            where = traceback.extract_tb(exc.__traceback__)[-1]
            verdict = f"crash {type(exc).__name__}: {str(exc)[:200]!r} at {where.filename}:{where.lineno}"
        sys.stdout.write(verdict.replace("\n", " ") + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
