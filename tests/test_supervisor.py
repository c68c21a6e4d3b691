"""Supervised parsing: a model whose reading loops in a C library, balloons or crashes ends with exit 2 within the
deadline, naming the file; healthy models read as before, in order; the worker never outlives bncheck."""

from __future__ import annotations

import faulthandler
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from bncheck import activity
from bncheck.config import Settings
from bncheck.readers.discover import find_models
from bncheck.scanning import report_of, reports_of
from bncheck.supervisor import Failed, Limits, supervised

from .conftest import FIXTURES, ROOT, run_cli

HEALTHY_H5 = FIXTURES / "keras" / "tfk_fit" / "model.h5"


def hanging_h5(directory: Path) -> Path:
    """The reproducer of the performance issue: 8 bytes inserted at offset 39975 of a tf.keras HDF5 file send
    the HDF5 library into a loop that holds the GIL (it never ends)."""
    data = HEALTHY_H5.read_bytes()
    path = directory / "hangs.h5"
    path.write_bytes(data[:39975] + bytes(8) + data[39975:])
    return path


def test_the_hdf5_loop_ends_with_exit_2_within_the_deadline(tmp_path: Path) -> None:
    start = time.monotonic()
    result = run_cli("inspect", str(hanging_h5(tmp_path)), "--timeout", "2")
    took = time.monotonic() - start
    assert result.returncode == 2, result.stderr
    assert "the HDF5 library did not finish reading" in result.stderr and "hangs.h5 within 2 s" in result.stderr
    assert "Traceback" not in result.stderr
    assert took < 2 + 8, took  # the deadline, and the start of two processes on a loaded machine


def test_a_scan_reports_the_damaged_model_and_reads_the_others_in_order(tmp_path: Path) -> None:
    hanging_h5(tmp_path)
    (tmp_path / "a.h5").write_bytes(HEALTHY_H5.read_bytes())
    (tmp_path / "z.h5").write_bytes(HEALTHY_H5.read_bytes())
    for jobs in ("1", "2"):
        result = run_cli("inspect", str(tmp_path), "--timeout", "2", "--jobs", jobs, "--format", "json")
        assert result.returncode == 2, result.stderr
        models = json.loads(result.stdout)["files"]
        assert [Path(m["path"]).name for m in models] == ["a.h5", "hangs.h5", "z.h5"]
        assert [bool(m["errors"]) for m in models] == [False, True, False]
        assert [len(m["layers"]) for m in models] == [3, 0, 3]


def test_diff_with_a_model_that_hangs_is_exit_2(tmp_path: Path) -> None:
    result = run_cli("diff", str(HEALTHY_H5), str(hanging_h5(tmp_path)), "--timeout", "1")
    assert result.returncode == 2, result.stderr
    assert re.search(r"did not finish reading .*model\.h5 and .*hangs\.h5 within 2 s", result.stderr), result.stderr


def test_the_deadline_comes_from_the_configuration(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.bncheck]\ntimeout = 1.5\n")
    result = run_cli("inspect", str(hanging_h5(tmp_path)), cwd=tmp_path)
    assert result.returncode == 2 and "within 1.5 s" in result.stderr, result.stderr


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("timeout = -1", "timeout must be a number of seconds"),
        ('timeout = "10"', "timeout must be a number of seconds"),
        ("memory-limit = 1.5", "memory-limit must be a number of MiB"),
        ("memory-limit = -2", "memory-limit must be a number of MiB"),
    ],
)
def test_bad_limits_in_the_configuration_are_errors(tmp_path: Path, table: str, message: str) -> None:
    (tmp_path / "pyproject.toml").write_text(f"[tool.bncheck]\n{table}\n")
    result = run_cli("inspect", str(HEALTHY_H5), cwd=tmp_path)
    assert result.returncode == 2 and message in result.stderr, result.stderr


def test_a_memory_cap_too_small_for_the_model_is_exit_2(tmp_path: Path) -> None:
    """A cap below what the worker already holds: its next allocation fails, in whatever library makes it."""
    (tmp_path / "pyproject.toml").write_text("[tool.bncheck]\nmemory-limit = 1\n")
    result = run_cli("inspect", str(HEALTHY_H5), cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "needed more than the 1 MiB of memory bncheck allows reading" in result.stderr, result.stderr


def test_the_memory_cap_stops_hdf5_ballooning_on_a_damaged_file(tmp_path: Path) -> None:
    """Found by the fuzzing campaign: 8 bytes overwritten at offset 891 of a tf.keras .h5 make the HDF5 library
    allocate 1.5 GB before it gives up. Under a 512 MiB cap its allocation fails at once: its own error, exit 2."""
    data = HEALTHY_H5.read_bytes()
    damaged = tmp_path / "balloons.h5"
    damaged.write_bytes(data[:891] + bytes.fromhex("5d4899afb407fc74") + data[899:])
    (tmp_path / "pyproject.toml").write_text("[tool.bncheck]\nmemory-limit = 512\n")
    result = run_cli("inspect", str(damaged), cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "balloons.h5: unreadable Keras HDF5 file" in result.stderr
    assert "memory allocation failed" in result.stderr, result.stderr


def test_healthy_models_read_the_same_with_and_without_supervision() -> None:
    supervised_run = run_cli("inspect", "fixtures", "--format", "json")
    in_process = run_cli("inspect", "fixtures", "--format", "json", "--timeout", "0")
    assert supervised_run.returncode == in_process.returncode == 1
    assert supervised_run.stdout == in_process.stdout


def test_no_worker_outlives_a_killed_bncheck(tmp_path: Path) -> None:
    """Killed while its worker loops inside HDF5 (a CI job cancelled): the kernel ends the worker too."""
    command = [sys.executable, "-m", "bncheck", "inspect", str(hanging_h5(tmp_path)), "--timeout", "60"]
    parent = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        worker = _child_of(parent.pid, seconds=10)
        assert worker is not None, "no worker started"
    finally:
        parent.kill()
        parent.wait()
    for _ in range(100):
        if not Path(f"/proc/{worker}").exists() or "zombie" in _state(worker):
            return
        time.sleep(0.05)
    os.kill(worker, signal.SIGKILL)
    pytest.fail("the worker kept running after bncheck was killed")


def _child_of(pid: int, seconds: float) -> int | None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for status in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = status.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                return int(status.parent.name)
        time.sleep(0.05)
    return None


def _state(pid: int) -> str:
    try:
        return {"Z": "zombie"}.get(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0], "running")
    except OSError:
        return "zombie"


# The supervisor itself, on work built in code


def _loops_in_c(item: int) -> int:
    """A regular expression that backtracks for ages: a C loop that holds the GIL, as HDF5's does."""
    if item == 1:
        re.match(r"(a+)+$", "a" * 64 + "b")
    return item * 10


def _crashes(item: int) -> int:
    if item == 1:
        faulthandler.disable()  # a crash on purpose: no traceback of it in the test log
        os.kill(os.getpid(), signal.SIGSEGV)
    return item


def _waits_for_the_network(item: int) -> int:
    with activity.waiting():
        time.sleep(1.5)
    activity.working_in("the test's library")
    return item


def _waits_too_long(item: int) -> int:
    with activity.waiting():
        time.sleep(30)
    return item


def _raises(item: int) -> int:
    raise ValueError(f"a bug on {item}")


def test_a_c_loop_holding_the_gil_is_cut_off_and_the_others_come_in_order() -> None:
    for jobs in (1, 2):
        start = time.monotonic()
        results = list(supervised([0, 1, 2, 3], _loops_in_c, str, jobs, Limits(timeout=1.0)))
        assert results[0] == 0 and results[2:] == [20, 30]
        assert isinstance(results[1], Failed) and "did not finish reading 1 within 1 s" in results[1].message
        assert time.monotonic() - start < 6


def test_a_crashing_worker_takes_only_its_item_with_it() -> None:
    results = list(supervised([0, 1, 2], _crashes, str, 1, Limits(timeout=5.0)))
    assert results[0] == 0 and results[2] == 2
    assert isinstance(results[1], Failed) and results[1].message == "bncheck crashed reading 1 (SIGSEGV): " + (
        "the file is damaged"
    )


def _logs_and_crashes_on_sevens(item: tuple[str, int]) -> int:
    log, number = item
    with open(log, "a") as stream:
        stream.write(f"{number}\n")
    if number % 7 == 3:
        faulthandler.disable()
        os.kill(os.getpid(), signal.SIGSEGV)
    return number


@pytest.mark.parametrize("jobs", [1, 2])
def test_the_models_given_ahead_to_a_worker_that_crashes_go_to_another_once(tmp_path: Path, jobs: int) -> None:
    """A worker holds the next model while it reads one: when it crashes, that one is read by another worker, once,
    and every result comes in order."""
    log = str(tmp_path / "log")
    items = [(log, number) for number in range(40)]
    results = list(supervised(items, _logs_and_crashes_on_sevens, str, jobs, Limits(timeout=5.0)))
    crashed = [number for number in range(40) if number % 7 == 3]
    assert [r if isinstance(r, int) else None for r in results] == [n if n % 7 != 3 else None for n in range(40)]
    assert all(isinstance(results[n], Failed) and "SIGSEGV" in results[n].message for n in crashed)
    begun = [int(line) for line in Path(log).read_text().split()]
    assert sorted(begun) == list(range(40))  # each read once, a crashed one included


def _logs_and_ends_before_the_next(item: tuple[str, int]) -> int:
    """Item 2, 7, 12...: its worker ends once it has sent the result, as it would be to begin the next model
    (killed from outside between two models: by the kernel's OOM killer, say)."""
    log, number = item
    with open(log, "a") as stream:
        stream.write(f"{number}\n")
    if number % 5 == 2:
        from multiprocessing.connection import Connection

        send = Connection.send

        def send_or_end(self: Connection, obj: object) -> None:
            if obj == ("begin", None):
                os._exit(0)
            send(self, obj)

        Connection.send = send_or_end  # type: ignore[method-assign]
    return number


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_model_whose_worker_ended_before_it_began_goes_to_another(tmp_path: Path, jobs: int) -> None:
    """A worker that ends between two models (after a result, before the next began) says nothing about the
    next one, which was given to it ahead: another worker reads it, and no model is reported as having crashed."""
    log = str(tmp_path / "log")
    items = [(log, number) for number in range(30)]
    assert list(supervised(items, _logs_and_ends_before_the_next, str, jobs, Limits(timeout=5.0))) == list(range(30))
    assert sorted(int(line) for line in Path(log).read_text().split()) == list(range(30))  # each read once


class _EndsTheWorkerThatReceivesIt:
    """An item whose worker ends as it receives it, before it can begin."""

    def __init__(self) -> None:
        self.parent = os.getpid()

    def __setstate__(self, state: dict[str, int]) -> None:
        if os.getpid() != state["parent"]:
            os._exit(0)
        self.__dict__.update(state)


def test_a_model_that_no_worker_can_begin_fails_after_a_second_worker() -> None:
    """Given to another worker once, not forever: the second time its worker ends, it is reported."""
    (outcome,) = supervised([_EndsTheWorkerThatReceivesIt()], str, lambda _: "model", 1, Limits(timeout=5.0))
    assert isinstance(outcome, Failed) and "crashed reading model (exit status 0)" in outcome.message


def test_time_waiting_for_the_network_is_not_counted() -> None:
    assert list(supervised([5], _waits_for_the_network, str, 1, Limits(timeout=1.0))) == [5]


def test_a_bug_in_the_work_is_raised_with_the_workers_traceback() -> None:
    with pytest.raises(RuntimeError, match=r"(?s)a bncheck worker failed:.*ValueError: a bug on 7"):
        list(supervised([7], _raises, str, 1, Limits(timeout=5.0)))


def test_workers_start_fresh_when_this_process_runs_threads(tmp_path: Path) -> None:
    """A fork of a process with threads can deadlock: then workers are spawned, and still cut the loop off."""
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        models = find_models(str(hanging_h5(tmp_path))) + find_models(str(HEALTHY_H5))
        settings = Settings(limits=Limits(timeout=3.0))
        reports = reports_of(models, settings)
    finally:
        stop.set()
        thread.join()
    assert "the HDF5 library did not finish reading" in reports[0].errors[0]
    assert not reports[1].errors and len(reports[1].layers) == 3
    alone = report_of(models[1], settings)
    assert [f.code for f in reports[1].findings] == [f.code for f in alone.findings]
    assert [layer.name for layer in reports[1].layers] == [layer.name for layer in alone.layers]


@dataclass(frozen=True)
class Bag:
    name: str
    items: list[int]
    few: list[int]

    def parted(self) -> tuple[Bag, dict[str, list[int]]]:
        return replace(self, items=[]), {"items": self.items}

    def joined(self, parts: dict[str, list[int]]) -> Bag:
        return replace(self, items=parts.get("items", []))


def _big(item: int) -> Bag:
    return Bag(f"bag {item}", list(range(item)), [item])


def test_long_lists_of_a_result_come_back_whole_a_part_at_a_time() -> None:
    """A 20,000-layer report is sent a thousand layers at a time (one pickle of all would cost 40 MB more)."""
    assert list(supervised([2500, 3, 1000], _big, str, 1, Limits(timeout=5.0))) == [_big(2500), _big(3), _big(1000)]


def test_one_wait_for_the_network_is_bounded_too() -> None:
    """A store that never answers (and a client without a deadline of its own) is cut off after WAITS deadlines."""
    start = time.monotonic()
    (outcome,) = supervised([1], _waits_too_long, str, 1, Limits(timeout=0.1))
    assert isinstance(outcome, Failed) and "did not finish reading 1" in outcome.message
    assert time.monotonic() - start < 10


def test_no_deadline_with_jobs_reads_in_workers(tmp_path: Path) -> None:
    assert list(supervised([0, 2, 3], _loops_in_c, str, 2, Limits(timeout=0))) == [0, 20, 30]
    result = run_cli("inspect", str(FIXTURES / "keras"), "--timeout", "0", "--jobs", "2", "--format", "json")
    assert result.returncode in (0, 1) and "Traceback" not in result.stderr, result.stderr
    assert result.stdout == run_cli("inspect", str(FIXTURES / "keras"), "--format", "json").stdout


def test_the_memory_cap_never_raises_a_limit_already_set() -> None:
    probe = (
        "import resource; from bncheck.supervisor import _cap\n"
        "resource.setrlimit(resource.RLIMIT_DATA, (2**30, resource.RLIM_INFINITY))\n"
        "_cap(4 * 2**30); print(resource.getrlimit(resource.RLIMIT_DATA)[0])\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert out.stdout.strip() == str(2**30), out.stderr
