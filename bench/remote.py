"""Remote reads, scans with ``--jobs`` and ``diff``, each timed against its local counterpart in the same run.

    python bench/remote.py             # bench.py's inputs (written if missing); writes bench/RESULTS-remote.md
    python bench/remote.py --runs 7

Rows (whole processes, median wall and peak RSS as in ``bench.py``):

- the ResNet-152 TF2 checkpoint of ``bench.py`` from the local disk, over HTTP from a server on 127.0.0.1
  (``tests/servers.py``: Range, keep-alive; it counts the requests and the body bytes it sends), and
  through moto's S3 server on 127.0.0.1;
- a scan of 1,000 small checkpoints (copies of ``fixtures/tf2_fit``, written by TensorFlow) with
  ``--jobs 2`` against without;
- ``bncheck diff`` of the 80,000-variable checkpoint with itself (both sides read whole: peak RSS).
"""

from __future__ import annotations

import argparse
import compileall
import datetime
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(HERE), str(ROOT / "tests")]

from servers import S3_ENV, range_server, s3_server, upload  # noqa: E402

from bench import DATA, INPUTS, Tool, _mb, machine  # noqa: E402

RESULTS = HERE / "RESULTS-remote.md"
SCAN = DATA / "scan1000"
SCAN_MODELS = 1_000


def _scan_inputs() -> None:
    """1,000 directories, each a copy of fixtures/tf2_fit (a TF2 checkpoint and its state file)."""
    if (SCAN / f"m{SCAN_MODELS - 1:04d}" / "checkpoint").is_file():
        return
    shutil.rmtree(SCAN, ignore_errors=True)
    for i in range(SCAN_MODELS):
        shutil.copytree(ROOT / "fixtures" / "tf2_fit", SCAN / f"m{i:04d}")


# Each timed process is started by a small launcher (bench.py's run_once, stdlib only): a child forked from
# this process, which holds boto3 and the servers, would count this process's pages in its peak RSS.
_LAUNCH = (
    "import json, os, sys; sys.path.insert(0, sys.argv[1]); from bench import run_once; "
    "print(json.dumps(run_once(json.loads(sys.argv[2]), dict(os.environ))))"
)


def run_once(command: list[str], env: dict[str, str]) -> tuple[float, int]:
    """Wall time and peak RSS of one whole process (measured by the launcher)."""
    launched = [sys.executable, "-c", _LAUNCH, str(HERE), json.dumps(command)]
    result = subprocess.run(launched, env=env, capture_output=True, text=True, check=True)
    wall, rss = json.loads(result.stdout)
    return wall, rss


def _timed(tools: list[Tool], runs: int, env: dict[str, str]) -> None:
    for repetition in range(runs + 1):  # round 0 warms caches and is not counted
        for tool in tools:
            sample = run_once(tool.command, env)
            if repetition:
                tool.samples.append(sample)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    resnet, bn_80k = INPUTS[0], INPUTS[5]
    if not (resnet.exists and bn_80k.exists):
        subprocess.run([sys.executable, str(HERE / "bench.py"), "--generate"], check=True)
    _scan_inputs()
    compileall.compile_dir(str(ROOT / "bncheck"), quiet=1)
    bncheck = str(Path(sys.executable).with_name("bncheck"))
    env = dict(os.environ, NO_COLOR="1")
    directory = resnet.path.parent
    files = sum(p.stat().st_size for p in directory.iterdir() if p.name.startswith(resnet.path.name))

    disk = Tool("local disk", [bncheck, "inspect", str(resnet.path)])
    traffic: dict[str, list[tuple[int, int]]] = {}
    with range_server(directory) as http, s3_server(own_process=True) as endpoint:
        upload(endpoint, "bench", directory, "resnet152")
        s3_env = {**env, **S3_ENV, "AWS_ENDPOINT_URL": endpoint}
        over_http = Tool("HTTP (127.0.0.1)", [bncheck, "inspect", f"{http.url}/{resnet.path.name}"])
        over_s3 = Tool("S3 (moto, 127.0.0.1)", [bncheck, "inspect", f"s3://bench/resnet152/{resnet.path.name}"])

        http_import = [sys.executable, "-c", "import fsspec.implementations.http"]
        importing = Tool("import fsspec's HTTP filesystem", http_import)
        for repetition in range(args.runs + 1):
            for tool, tool_env in ((disk, env), (over_http, env), (over_s3, s3_env), (importing, env)):
                http.traffic.reset()
                sample = run_once(tool.command, tool_env)
                if tool is over_http:
                    traffic.setdefault(tool.label, []).append((http.traffic.requests, http.traffic.bytes))
                if repetition:
                    tool.samples.append(sample)
    requests, sent = traffic[over_http.label][-1]

    serial = Tool("inspect (one process)", [bncheck, "inspect", str(SCAN), "--format", "json"])
    jobs = Tool("inspect --jobs 2", [bncheck, "inspect", str(SCAN), "--format", "json", "--jobs", "2"])
    diff = Tool("diff", [bncheck, "diff", str(bn_80k.path), str(bn_80k.path)])
    _timed([serial, jobs], args.runs, env)
    _timed([diff], args.runs, env)

    lines = [
        "# Remote reads, scans and diff",
        "",
        f"Reproduce: `python bench/remote.py --runs {args.runs}` (median of {args.runs} runs after a warm-up round).",
        f"{datetime.date.today().isoformat()}; " + "; ".join(machine()),
        "",
        f"ResNet-152 TF2 checkpoint ({files / 2**20:.0f} MiB in its files):",
        "",
        "| read from | median wall (s) | peak RSS (MB) | wall / local disk | requests | bytes sent (share of files) |",
        "|---|---:|---:|---:|---:|---:|",
        f"| {disk.label} | {disk.wall:.3f} | {_mb(disk.rss)} | 1.0x | | |",
        f"| {over_http.label} | {over_http.wall:.3f} | {_mb(over_http.rss)} | {over_http.wall / disk.wall:.2f}x "
        f"| {requests} | {sent:,} ({100 * sent / files:.2f}%) |",
        f"| {over_s3.label} | {over_s3.wall:.3f} | {_mb(over_s3.rss)} | {over_s3.wall / disk.wall:.2f}x | | |",
        "",
        "The S3 row measures moto: its `FakeKey.value` copies the whole object for every ranged GET (bncheck makes the",
        f"same range reads as over HTTP). Of the HTTP row, {importing.wall:.3f} s is the interpreter and the import of",
        "fsspec's HTTP filesystem (`python -c 'import fsspec.implementations.http'`: fsspec, asyncio, aiohttp and its",
        f"SSL contexts); without it, HTTP takes {over_http.wall - importing.wall:.3f} s "
        f"({(over_http.wall - importing.wall) / disk.wall:.2f}x the local disk).",
        "",
        f"A scan of {SCAN_MODELS:,} small TF2 checkpoints (json output, {os.cpu_count()} cores):",
        "",
        "| tool | median wall (s) | peak RSS, largest process (MB) | speed-up |",
        "|---|---:|---:|---:|",
        f"| {serial.label} | {serial.wall:.3f} | {_mb(serial.rss)} | 1.0x |",
        f"| {jobs.label} | {jobs.wall:.3f} | {_mb(jobs.rss)} | {serial.wall / jobs.wall:.2f}x |",
        "",
        "`bncheck diff` of the 80,000-variable checkpoint (73 MiB of BN values) with itself:",
        "",
        "| tool | median wall (s) | peak RSS (MB) |",
        "|---|---:|---:|",
        f"| {diff.label} | {diff.wall:.3f} | {_mb(diff.rss)} |",
        "",
        "Targets (issue 17):",
        "",
        "| target | measured | met |",
        "|---|---:|---|",
    ]
    share = sent / files
    rows = [
        ("ResNet-152 over HTTP: at most 3% of its bytes", f"{100 * share:.2f}%", share <= 0.03),
        ("ResNet-152 over HTTP: at most 400 requests", f"{requests}", requests <= 400),
        (
            "ResNet-152 over HTTP: within 2x the local-disk wall time",
            f"{over_http.wall / disk.wall:.2f}x",
            over_http.wall <= 2 * disk.wall,
        ),
        ("diff of two 80,000-variable checkpoints: under 100 MB peak", f"{_mb(diff.rss)} MB", diff.rss < 100 * 2**20),
    ]
    lines += [f"| {what} | {measured} | {'yes' if ok else '**no**'} |" for what, measured, ok in rows]
    text = "\n".join(lines) + "\n"
    print(text)
    RESULTS.write_text(text)


if __name__ == "__main__":
    main()
