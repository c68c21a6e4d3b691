"""Regenerate bncheck/readers/proto/tf_subset_pb2.py from tf_subset.proto.

    python scripts/gen_proto.py          # rewrite the committed module
    python scripts/gen_proto.py --check  # exit 1 if the committed module is stale

Needs grpcio-tools (the `test` extra pins the version the module was made with).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO = Path("bncheck/readers/proto/tf_subset.proto")
MODULE = ROOT / "bncheck/readers/proto/tf_subset_pb2.py"


def generate(out_dir: Path) -> Path:
    """Run protoc on the schema subset; return the generated module's path."""
    from grpc_tools import protoc

    status = protoc.main(["protoc", f"-I{ROOT}", f"--python_out={out_dir}", str(PROTO)])
    if status != 0:
        raise SystemExit(f"protoc failed with status {status}")
    return out_dir / PROTO.with_name("tf_subset_pb2.py")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare, do not write")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        fresh = generate(Path(tmp)).read_bytes()
    if args.check:
        if not MODULE.exists() or MODULE.read_bytes() != fresh:
            print(f"{MODULE.relative_to(ROOT)} is stale: run python scripts/gen_proto.py")
            return 1
        return 0
    MODULE.write_bytes(fresh)
    print(f"wrote {MODULE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
