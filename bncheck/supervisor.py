"""Models read in worker processes, under a deadline and a memory cap.

A damaged file can send a C library (HDF5 above all) into a loop that holds the GIL, or make it allocate without
end: no timer inside the process stops either. So the command line reads each model in a worker process. The
supervisor gives a worker one model at a time, and the next one to follow without waiting for a round trip; a
worker past the deadline is killed and replaced, its model reported unreadable and the next given to another (time
spent waiting for a store is not counted: remote reads have deadlines of their own). A worker's memory is capped
(``RLIMIT_DATA``: its heap and anonymous maps, not the read-only maps of model files), so a read that balloons fails
inside it; a worker that crashes takes only its model with it. Results come back pickled, in the order of the
models. Workers are forked when this process runs no other thread (a fork of a process with threads can deadlock) but
fsspec's event loop, else started fresh.
"""

from __future__ import annotations

import os
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

TIMEOUT = 10.0  # seconds per model, by default
AHEAD = 2  # items given to a worker at once: the next waits in its pipe, not for a round trip
PART = 1000  # items of a long list in a result pickled at once (a 20,000-layer report whole costs 40 MB more)
STARTUP = 30.0  # seconds a worker may take to start (a spawned one imports bncheck), besides the deadline
WAITS = 30  # one wait for the network may last this many deadlines (remote reads have their own, mostly)


@dataclass(frozen=True)
class Limits:
    """How long and how much one model may take. ``timeout`` 0: no deadline (the command line then reads in its
    own process, without a memory cap, unless given --jobs)."""

    timeout: float = TIMEOUT  # seconds of work per model
    memory: int | None = None  # MiB a worker may allocate; None: half of this machine's memory; 0: no cap

    def memory_bytes(self) -> int:
        if self.memory is None:
            return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2
        return self.memory * 2**20


@dataclass(frozen=True)
class Failed:
    """Why a worker gave no result for an item."""

    message: str


def supervised(
    items: Sequence[T], work: Callable[[T], R], shown: Callable[[T], str], jobs: int, limits: Limits
) -> Iterator[R | Failed]:
    """``work(item)`` for each item, in order, in up to ``jobs`` worker processes under ``limits``; an item whose
    worker ran past the deadline, out of memory or crashed is a :class:`Failed`. A bug in ``work`` (an exception
    other than MemoryError) is raised here, with the worker's traceback."""
    from multiprocessing.connection import wait

    context = _context()
    queue, results, workers = deque(enumerate(items)), {}, []
    following, again = 0, set()  # again: items whose worker ended before they began, given to another
    try:
        while following < len(items):
            for worker in [w for w in workers if not w.pending and not w.process.is_alive()]:
                worker.kill()  # (ended between models: killed from outside)
                workers.remove(worker)
            while queue:
                idle = [worker for worker in workers if not worker.pending]
                room = [worker for worker in workers if len(worker.pending) < AHEAD]
                fresh = not idle and len(workers) < jobs
                if fresh:
                    workers.append(_Worker(context, work, limits.memory_bytes()))
                elif not room:
                    break
                worker = workers[-1] if fresh else (idle or sorted(room, key=lambda w: len(w.pending)))[0]
                try:
                    worker.give(*queue[0])
                except OSError:  # it ended since (killed from outside)
                    if fresh:  # a worker that cannot even start
                        raise
                    if worker.pending:
                        break  # its model's outcome is heard below
                    worker.kill()  # the model goes to another
                    workers.remove(worker)
                    continue
                queue.popleft()
            busy = [worker for worker in workers if worker.pending]
            left = [seconds for worker in busy if (seconds := worker.left(limits.timeout)) is not None]
            wait([w.conn for w in busy] + [w.process.sentinel for w in busy], max(0.0, min(left)) if left else None)
            for worker in busy:
                index, outcome = worker.pending[0][0], worker.hear()
                if outcome is None and (seconds := worker.left(limits.timeout)) is not None and seconds <= 0:
                    outcome = Failed(_overdue(worker.library, shown(items[index]), limits.timeout))
                if outcome is None:
                    continue
                if isinstance(outcome, _Ended) and not worker.begun and index not in again:
                    again.add(index)  # it ended between models (killed from outside): none of them began
                    queue.extendleft(reversed(worker.pending))  # to another worker; a second time it fails
                    worker.kill()
                    workers.remove(worker)
                    continue
                if isinstance(outcome, _Ended):
                    outcome = Failed(outcome.message(worker.library, shown(items[index]), limits))
                if isinstance(outcome, Failed):  # (one that ended after a result: its next item fails next round)
                    queue.extendleft(reversed(worker.ahead()))  # given, never begun: to another worker
                    worker.kill()
                    workers.remove(worker)
                results[index] = outcome
            while following in results:
                yield results.pop(following)
                following += 1
    finally:
        for worker in workers:
            worker.stop()


FSSPEC_LOOP = "fsspecIO"  # fsspec's event-loop thread: fsspec makes a new loop in a forked child (at-fork hooks)


def _context() -> Any:
    """Fork (cheap: nothing to import again) when this process runs no other thread but fsspec's loop, on Linux."""
    import multiprocessing
    import threading

    others = [t for t in threading.enumerate() if t is not threading.current_thread() and t.name != FSSPEC_LOOP]
    return multiprocessing.get_context("fork" if sys.platform == "linux" and not others else "spawn")


@dataclass(frozen=True)
class _Ended:
    """A worker that stopped without a result: out of memory, or killed by a signal."""

    how: str  # "memory", or the signal's name

    def message(self, library: str, shown: str, limits: Limits) -> str:
        if self.how == "memory":
            return (
                f"{library} needed more than the {limits.memory_bytes() // 2**20} MiB of memory bncheck allows "
                f"reading {shown}: the file is damaged, or claims more than it holds (memory-limit in [tool.bncheck])"
            )
        return f"{library} crashed reading {shown} ({self.how}): the file is damaged"


def _overdue(library: str, shown: str, timeout: float) -> str:
    return (
        f"{library} did not finish reading {shown} within {timeout:g} s: the file is damaged, or needs more time "
        "(--timeout)"
    )


class _Worker(Generic[T, R]):
    """One worker process, the item it is working on and those given to it to follow (at most AHEAD in all)."""

    def __init__(self, context: Any, work: Callable[[T], R], memory: int) -> None:
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_serve, args=(child, work, memory, os.getpid()), daemon=True)
        self.process.start()
        child.close()
        self.pending: deque[tuple[int, T]] = deque()  # (index, item): the first is being worked on
        self.parts: dict[str, list[Any]] = {}  # of the result on its way
        self._next()

    def _next(self) -> None:
        """The clock of the first pending item, from now (STARTUP more until the worker says it began)."""
        self.started, self.waited, self.in_wait = time.monotonic(), 0.0, False
        self.library, self.begun = "bncheck", False

    def give(self, index: int, item: T) -> None:
        self.conn.send(item)
        self.pending.append((index, item))

    def ahead(self) -> list[tuple[int, T]]:
        """The items given after the one being worked on."""
        return list(self.pending)[1:]

    def left(self, timeout: float) -> float | None:
        """Seconds left before the deadline (None without one): of work once the worker began (before, it may
        still be starting: STARTUP more), of one wait for the network (at most WAITS times the deadline)."""
        if not timeout:
            return None
        now = time.monotonic()
        if self.in_wait:
            return timeout * WAITS - (now - self.wait_started)
        return timeout + (0 if self.begun else STARTUP) - (now - self.started - self.waited)

    def hear(self) -> R | _Ended | None:
        """What the worker told so far: its result or how it ended, if either came."""
        try:
            while self.conn.poll():
                kind, value = self.conn.recv()
                if kind == "library":
                    self.library = value
                elif kind == "begin":
                    self.begun, self.started = True, time.monotonic()
                elif kind == "wait":
                    self.in_wait, self.wait_started = True, time.monotonic()
                elif kind == "waited":
                    self.in_wait, self.waited = False, self.waited + value
                elif kind == "part":
                    self.parts.setdefault(value[0], []).extend(value[1])
                elif kind == "done":
                    self.pending.popleft()
                    self._next()
                    parts, self.parts = self.parts, {}
                    return value.joined(parts) if parts else value
                elif kind == "memory":
                    return _Ended("memory")
                else:
                    raise RuntimeError(f"a bncheck worker failed:\n{value}")
        except (EOFError, OSError):
            pass
        if self.process.is_alive():
            return None
        self.process.join()
        code = self.process.exitcode or 0
        return _Ended(_signal_name(-code) if code < 0 else f"exit status {code}")

    def kill(self) -> None:
        self.pending.clear()
        if self.process.is_alive():
            self.process.kill()
        self.process.join()
        self.conn.close()

    def stop(self) -> None:
        if self.process.is_alive() and not self.pending:
            try:
                self.conn.send(None)
                self.process.join(1)
            except OSError:
                pass
        self.kill()


def _signal_name(number: int) -> str:
    import signal

    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _serve(conn: Any, work: Callable[[Any], Any], memory: int, parent: int) -> None:
    """A worker's life: items in, results out, until told to stop or its parent is gone."""
    import signal
    import traceback

    from . import activity

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # an interrupt is the supervisor's to handle
    _end_with(parent)
    lift_cap = _cap(memory) if memory else None
    activity.listen(lambda kind, value: conn.send((kind, value)))
    while True:
        while not conn.poll(1.0):
            if os.getppid() != parent:
                return
        try:
            item = conn.recv()
        except EOFError:
            return
        if item is None:
            return
        conn.send(("begin", None))
        try:
            _send(conn, work(item))
        except MemoryError:
            if lift_cap is not None:
                lift_cap()  # room to say so
            conn.send(("memory", None))
            return  # what ran out of memory may have left this process in any state
        except BaseException:
            conn.send(("error", traceback.format_exc()))
            return


def _send(conn: Any, result: Any) -> None:
    """``result``, its long lists (a report's layers: what its ``parted`` gives) sent a part at a time: one
    pickle of the whole would hold a copy of it and a memo of every object in it at once. The supervisor puts it
    together again with the result's ``joined``."""
    if hasattr(result, "parted"):
        skeleton, lists = result.parted()
        if any(len(values) > PART for values in lists.values()):
            for name, values in lists.items():
                for start in range(0, len(values), PART):
                    conn.send(("part", (name, values[start : start + PART])))
            conn.send(("done", skeleton))
            return
    conn.send(("done", result))


def _end_with(parent: int) -> None:
    """Have the kernel end this worker when its parent ends, even while it is stuck in a C library (Linux)."""
    if sys.platform == "linux":
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # it ended before that took hold
        os._exit(0)


def _cap(memory: int) -> Callable[[], None]:
    """Cap this process's heap and anonymous maps at ``memory`` bytes; the function returned lifts the cap."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
    cap = min([memory, *(bound for bound in (soft, hard) if bound != resource.RLIM_INFINITY)])
    resource.setrlimit(resource.RLIMIT_DATA, (cap, hard))  # never above a limit already set
    return lambda: resource.setrlimit(resource.RLIMIT_DATA, (soft, hard))
