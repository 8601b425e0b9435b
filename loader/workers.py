"""Run worker functions in a process pool, or in-process when one worker is asked for.

In-process mode (`--max-workers 1`, or a load too small to fill two chunks) runs the very same
functions synchronously, so they are easy to test and profile. The pool uses the forkserver
start method with our modules preloaded: polars must not be forked from a process whose thread
pool is running, and preloading keeps worker start-up to a fork.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any, TypeVar

A = TypeVar("A")
R = TypeVar("R")
PRELOAD = ["loader.parse", "loader.frame", "loader.images"]


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
    def __init__(self, executor: Executor, size: int) -> None:
        self.executor = executor
        self.size = size
        self.inline = isinstance(executor, _Inline)

    def submit(self, fn: Callable[[A], R], arg: A) -> Future[R]:
        return self.executor.submit(fn, arg)

    def ordered(self, fn: Callable[[A], R], tasks: Iterable[A], window: int,
                timer: Callable[[], AbstractContextManager[Any]] = nullcontext) -> Iterator[R]:
        """fn over tasks, results in task order, at most `window` tasks in flight (bounded memory)."""
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
                result = head.result()
            yield result


def _alive(pid: int) -> bool:
    """True while pid runs; a zombie (killed, not yet reaped by its parent) counts as gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: fall back to a signal probe
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
        return True


def _watch_parent(parent: int) -> None:
    """Worker initializer: exit when the loader is gone.

    A loader killed with SIGKILL cannot shut its pool down, and its workers would otherwise wait
    for work forever (holding the cron job's log pipe open).
    """
    def watch() -> None:
        while _alive(parent):
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="pharmload-parent-watch").start()


@contextmanager
def pool(size: int) -> Iterator[Pool]:
    if size <= 1:
        yield Pool(_Inline(), 1)
        return
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)
    with ProcessPoolExecutor(max_workers=size, mp_context=ctx, initializer=_watch_parent,
                             initargs=(os.getpid(),)) as executor:
        yield Pool(executor, size)


def split(rels: list[str], paths: list[str], parts: int) -> list[tuple[list[str], list[str]]]:
    """Cut two parallel lists into at most `parts` contiguous pieces of near-equal length."""
    n = len(rels)
    parts = max(1, min(parts, n))
    bounds = [n * i // parts for i in range(parts + 1)]
    return [(rels[a:b], paths[a:b]) for a, b in itertools.pairwise(bounds) if b > a]
