"""A fuzzing campaign, run by hand: ``python -m tests.fuzz_campaign --cases 50000 --workers 2``.

Draws cases of both fuzzers of tests/test_fuzz.py (byte mutations and structure-aware damage) at random, runs each
in the harness's worker (supervised as ``bncheck inspect``), and tallies the verdicts. Every case that did not end
with a report or bncheck's own error (a deadline, the memory cap, a crash, a hang, another exception, a changed
input) is written to ``--log`` as JSON lines with the parameters to keep it as an ``@example``.
"""

from __future__ import annotations

import argparse
import json
import random
import threading
import time
from collections import Counter
from pathlib import Path

from .structured import DAMAGES
from .test_fuzz import MUTATIONS, STRUCTURED, TARGETS, Worker, run_case, run_structured


def draw(rng: random.Random) -> dict[str, object]:
    if rng.random() < 0.3:
        payload = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
        return {
            "fuzzer": "bytes",
            "target": rng.randrange(len(TARGETS)),
            "file": rng.randrange(3),
            "kind": rng.choice(MUTATIONS),
            "where": rng.random(),
            "payload": payload.hex(),
        }
    return {
        "fuzzer": "structured",
        "target": rng.randrange(len(STRUCTURED)),
        "op": rng.randrange(4),
        "structure": rng.randrange(2**16),
        "field": rng.randrange(64),
        "value": rng.randrange(256),
        "count": rng.choice([rng.randrange(16), rng.randrange(2**16)]),
    }


def run(worker: Worker, case: dict[str, object]) -> str:
    params = {k: v for k, v in case.items() if k != "fuzzer"}
    try:
        if case["fuzzer"] == "bytes":
            params["payload"] = bytes.fromhex(str(params["payload"]))
            verdict = run_case(worker, **params)  # type: ignore[arg-type]
        else:
            verdict = run_structured(worker, **params)  # type: ignore[arg-type]
    except AssertionError as exc:
        message = str(exc).split("\n")[0]
        return message.rsplit(": ", 1)[-1] if "hang" in message or "crash" in message else message
    return verdict


def label(case: dict[str, object]) -> str:
    if case["fuzzer"] == "bytes":
        return f"bytes {TARGETS[int(case['target'])][0]} {case['kind']}"  # type: ignore[call-overload]
    source, _, file, kind = STRUCTURED[int(case["target"])]  # type: ignore[call-overload]
    ops = DAMAGES[kind][1]
    return f"structured {source} ({file}) {kind} {ops[int(case['op']) % len(ops)]}"  # type: ignore[call-overload]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", type=int, default=50000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=18)
    parser.add_argument("--log", type=Path, default=Path("fuzz-campaign.jsonl"))
    args = parser.parse_args()
    rng, lock = random.Random(args.seed), threading.Lock()
    cases = [draw(rng) for _ in range(args.cases)]
    verdicts: Counter[str] = Counter()
    by_label: dict[str, Counter[str]] = {}
    start, next_case = time.monotonic(), iter(range(len(cases)))

    def work() -> None:
        worker = Worker()
        with args.log.open("a") as log:
            while True:
                with lock:
                    index = next(next_case, None)
                if index is None:
                    break
                case, began = cases[index], time.monotonic()
                verdict = run(worker, case)
                with lock:
                    verdicts[verdict] += 1
                    by_label.setdefault(label(case), Counter())[verdict] += 1
                    if verdict not in ("ok", "error"):
                        log.write(json.dumps({**case, "verdict": verdict, "seconds": time.monotonic() - began}) + "\n")
                        log.flush()
                    done = sum(verdicts.values())
                    if done % 1000 == 0:
                        print(f"{done} cases, {time.monotonic() - start:.0f} s: {dict(verdicts)}", flush=True)
        worker.close()

    threads = [threading.Thread(target=work) for _ in range(args.workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(f"{sum(verdicts.values())} cases in {time.monotonic() - start:.0f} s: {dict(verdicts)}")
    for name, counts in sorted(by_label.items()):
        print(f"  {name}: {dict(counts)}")


if __name__ == "__main__":
    main()
