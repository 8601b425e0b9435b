"""Run worker functions in a process pool, or in-process when one worker is asked for.

In-process mode (`--max-workers 1`, or a load too small to fill two chunks) runs the very same
functions synchronously, so they are easy to test and profile. The pool uses the forkserver
start method with our modules preloaded: polars must not be forked from a process whose thread
pool is running, and preloading keeps worker start-up to a fork.
"""

from __future__ import annotations

import gc
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import BrokenExecutor, Executor, Future, ThreadPoolExecutor, wait
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from typing import TYPE_CHECKING, Any, TypeVar

from loader import procs
from loader.errors import LoadError, is_interruption

if TYPE_CHECKING:
    from concurrent.futures import ProcessPoolExecutor

A = TypeVar("A")
R = TypeVar("R")
PRELOAD = ["loader.scan.parse", "loader.scan.frame", "loader.scan.images"]
# Workers are replaced after about this many chunks each: the memory their allocators keep from
# chunk to chunk otherwise grows through a million-file load (150 -> 280 MB PSS).
TASKS_PER_WORKER = 40
INTERRUPT_CHECK = 0.2  # seconds: how long a wait for a lane may hold up Ctrl-C


class _Inline(Executor):
    """An executor that runs each call at submit time."""

    def submit(self, fn: Callable[..., R], /, *args: Any, **kwargs: Any) -> Future[R]:
        fut: Future[R] = Future()
        try:
            fut.set_result(fn(*args, **kwargs))
        except BaseException as exc:
            fut.set_exception(exc)
        return fut


class Pool:
    def __init__(self, executor: Executor, size: int, renew: Callable[[], Executor] | None = None) -> None:
        self.executor = executor
        self.size = size
        self.inline = isinstance(executor, _Inline)
        self.renew = renew
        self.submitted = 0

    def submit(self, fn: Callable[[A], R], arg: A) -> Future[R]:
        if self.renew is not None and self.submitted and self.submitted % (TASKS_PER_WORKER * self.size) == 0:
            # Fresh workers (forks of the preloaded forkserver) once the old ones finish their
            # tasks. Not max_tasks_per_child: before Python 3.13.x it can deadlock (gh-115634).
            self.executor.shutdown(wait=True)
            self.executor = self.renew()
        self.submitted += 1
        return self.executor.submit(fn, arg)

    def ordered(self, fn: Callable[[A], R], tasks: Iterable[A], window: int,
                timer: Callable[[], AbstractContextManager[Any]] = nullcontext) -> Iterator[R]:
        """fn over tasks, results in task order, at most `window` tasks in flight (bounded memory)."""
        try:
            yield from self._ordered(fn, tasks, window, timer)
        except BrokenExecutor as exc:  # a worker process died: the kernel's OOM killer, a kill by hand
            if is_interruption(exc):
                raise  # the signal that also reached the workers is what the CLI reports
            raise LoadError("a worker process ended unexpectedly (killed, perhaps by the out-of-memory "
                            "killer); nothing was committed: run the load again, with a smaller "
                            "--chunk-files or fewer --max-workers if memory is short") from exc

    def _ordered(self, fn: Callable[[A], R], tasks: Iterable[A], window: int,
                 timer: Callable[[], AbstractContextManager[Any]]) -> Iterator[R]:
        queue: deque[Future[R]] = deque()
        it = iter(tasks)
        while True:
            while len(queue) < max(1, window):
                task = next(it, None)
                if task is None:
                    break
                if self.inline:
                    with timer():
                        queue.append(self.submit(fn, task))
                else:
                    queue.append(self.submit(fn, task))
            if not queue:
                return
            head = queue.popleft()
            with timer():
                result = result_of(head)
            yield result


def before_exit() -> None:
    """What the interpreter's exit does for multiprocessing, which the CLI's os._exit skips: run its
    exit hook, which removes its temporary folder (`pymp-*`, holding the forkserver's socket). A
    load that ran workers left one in TMPDIR each time before, every cron run included."""
    util = sys.modules.get("multiprocessing.util")
    hook = getattr(util, "_exit_function", None)
    if hook is not None:
        hook()


def _start_worker(parent: int) -> None:
    """Worker initializer: exit when the loader is gone, and never collect the preloaded modules.

    A loader killed with SIGKILL cannot shut its pool down, and its workers would otherwise wait
    for work forever (holding the cron job's log pipe open). The modules PRELOAD imported (polars
    with them) live as long as the worker; frozen, the collector's full passes over each chunk's
    garbage skip them (a full pass over them is ~0.04 s), and never write to their shared pages.
    """
    gc.freeze()
    # Ctrl-C reaches every process of the terminal's group: the loader acts on it and stops the
    # workers (_abandon); a KeyboardInterrupt here would only print a traceback per worker.
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def watch() -> None:
        while procs.alive(parent):
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="pharmload-parent-watch").start()


def start_early() -> None:
    """Start the forkserver now, so that it imports PRELOAD (polars, ~0.3 s) while the loader is
    still importing its own modules and walking the tree, instead of when the pool starts
    (headstart.py decides when that is worth it)."""
    import multiprocessing
    from multiprocessing import forkserver

    multiprocessing.get_context("forkserver").set_forkserver_preload(PRELOAD)
    with suppress(OSError):  # only a head start: pool() starts it, or reports why not
        forkserver.ensure_running()


@contextmanager
def pool(size: int) -> Iterator[Pool]:
    if size <= 1:
        yield Pool(_Inline(), 1)
        return
    # Imported here: a load that runs in-process never pays for multiprocessing's ~30 ms of imports.
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)  # no effect when start_early() already started it

    def executor() -> ProcessPoolExecutor:
        return ProcessPoolExecutor(max_workers=size, mp_context=ctx, initializer=_start_worker,
                                   initargs=(os.getpid(),))

    first = executor()
    # Start the workers now (they import polars, ~0.3 s), while the caller plans and opens its
    # transaction, rather than when the first chunk is ready.
    for _ in range(size):
        first.submit(_ready)
    workers = Pool(first, size, renew=executor)
    try:
        yield workers
    except BaseException as exc:
        if is_interruption(exc):
            _abandon(workers.executor)
        else:
            workers.executor.shutdown(wait=True)
        raise
    workers.executor.shutdown(wait=True)


def _abandon(executor: Executor) -> None:
    """Stop the workers of an interrupted load without waiting for them. SIGTERM to the whole group
    kills workers wherever they are, one perhaps halfway through sending a result, and the pool's
    orderly shutdown would then wait forever for the rest of it. Their work is void anyway: the
    transaction rolls back, and a store object is written whole or not at all."""
    for proc in list(getattr(executor, "_processes", {}).values()):  # no public handle before 3.14
        with suppress(OSError, ValueError, AttributeError):
            proc.kill()
    executor.shutdown(wait=False, cancel_futures=True)


def _ready() -> None:
    """A no-op task that makes the pool start its worker processes."""


class Lanes:
    """Two background threads, so that waiting on the database and on the disk overlaps with parsing.

    The `db` lane owns the load's connection while the stream runs (COPYs go out one at a time, in
    order; on a first load it opens the connection too, see `open_with`); the `store` lane puts
    screenshots into the image store. Both mostly wait in system calls, which release the GIL. A
    failure in either is raised in the caller at its next `check()`.
    """

    def __init__(self, max_pending: int = 4) -> None:
        self.db = ThreadPoolExecutor(1, thread_name_prefix="pharmload-copy")
        self.store = ThreadPoolExecutor(1, thread_name_prefix="pharmload-store")
        self.max_pending = max_pending
        self._futures: deque[Future[Any]] = deque()
        self._lock = threading.Lock()
        self._opening: Future[Any] | None = None

    def open_with(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run fn (connect and begin) first on the db lane. Nothing queued after it on either lane
        runs unless it succeeded: a load that cannot reach its database writes nothing into the image
        store either."""
        self._opening = self.db.submit(fn, *args)
        with self._lock:
            self._futures.append(self._opening)

    def opening(self) -> bool:
        """Whether the db lane is still running open_with's fn (it may be waiting for a lock)."""
        return self._opening is not None and not self._opening.done()

    def opened(self, patience: float = 0.0) -> bool:
        """Whether the load's transaction has begun (open_with's fn succeeded, or none was given):
        from then on, the image store may be written. Waits up to `patience` seconds for it."""
        if self._opening is None:
            return True
        if patience > 0 and not self._opening.done():
            wait([self._opening], timeout=patience)
        return self._opening.done() and self._opening.exception() is None

    def submit(self, lane: ThreadPoolExecutor, fn: Callable[..., Any], *args: Any) -> None:
        """Queue fn on a lane; after open_with, only to run once the transaction has begun (a COPY
        queued behind a failed connection attempt gives up with it instead of running without one)."""
        fut = lane.submit(fn, *args) if self._opening is None else lane.submit(_after, self._opening, fn, *args)
        with self._lock:
            self._futures.append(fut)

    def check(self) -> None:
        """Raise the first failure so far; wait while too much work is queued (bounded memory)."""
        while True:
            with self._lock:
                done = [f for f in self._futures if f.done()]
                for f in done:
                    self._futures.remove(f)
                oldest = self._futures[0] if len(self._futures) > self.max_pending else None
            for f in done:
                f.result()
            if oldest is None:
                return
            result_of(oldest)

    def wait_for(self, lane: ThreadPoolExecutor) -> None:
        """Wait until every task queued so far on one lane has run (its thread runs them in order)."""
        result_of(lane.submit(lambda: None))
        self.check()

    def drain(self) -> None:
        """Wait for everything queued, including work queued by other queued work."""
        while True:
            with self._lock:
                if not self._futures:
                    return
                fut = self._futures.popleft()
            result_of(fut)

    def close(self) -> None:
        self.db.shutdown(wait=True, cancel_futures=True)
        self.store.shutdown(wait=True, cancel_futures=True)


def result_of(fut: Future[R]) -> R:
    """fut.result(), in slices: Ctrl-C is delivered to whichever thread the kernel picks (a lane, one
    of polars' threads), and the main thread acts on it only when it next runs Python code. An
    unbounded wait (a lane waiting for the tag's lock) would hold the interrupt until that wait ended."""
    while True:
        try:
            return fut.result(timeout=INTERRUPT_CHECK)
        except TimeoutError:
            continue


def _after(first: Future[Any], fn: Callable[..., Any], *args: Any) -> Any:
    first.result()  # raises first's error instead of running fn
    return fn(*args)
