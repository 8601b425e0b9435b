"""The few exception types pharmload raises, each mapped to one exit code.

The CLI turns any of these into one line on stderr and its exit code; everything else is a bug
and gets a traceback and exit code 3 (a failed load), never Python's 1, which means rejects here.
Only `TransientDatabaseError` is ever retried (`retry`): it marks faults where the same
transaction, run again, can succeed (connection lost, server restarted, serialization failure).
Nothing here imports the driver, so a load can decide and report without it.
"""

from __future__ import annotations

import logging
import random
import signal
import time
from collections.abc import Callable
from typing import TypeVar

log = logging.getLogger("pharmload")
T = TypeVar("T")

EXIT_OK = 0
EXIT_REJECTS = 1
EXIT_USAGE = 2
EXIT_LOAD_FAILED = 3
EXIT_VERIFY_MISMATCH = 4
EXIT_INTERRUPTED = 130  # Ctrl-C (SIGINT): 128 + the signal's number, as shells report it
EXIT_TERMINATED = 143  # SIGTERM


class Terminated(KeyboardInterrupt):
    """SIGTERM: a cron job's time limit (`timeout`), systemd stopping a service, a container's end.
    Unwound as Ctrl-C is, so that the transaction rolls back, the workers stop, the spill folder is
    removed and the report says what happened, rather than the process vanishing at once."""


_SIGNALS: list[int] = []  # the interrupting signals this process received, in order


def on_signal(signum: int, frame: object) -> None:
    """The loader's handler of SIGINT and SIGTERM (cli.main installs it in its main process)."""
    _SIGNALS.append(signum)
    raise Terminated if signum == signal.SIGTERM else KeyboardInterrupt


def interrupted_by() -> int | None:
    """The signal that interrupted this load, if one did. Sent to the whole process group, it also
    reaches the db process and the workers, and what that breaks (a cancelled statement, a broken
    pool) may surface before the loader's own KeyboardInterrupt: an effect, not a failure."""
    return _SIGNALS[0] if _SIGNALS else None


def is_interruption(exc: BaseException) -> bool:
    """Whether exc ends the load as interrupted rather than failed: Ctrl-C or SIGTERM itself, or
    whatever was raised after one of them came."""
    return isinstance(exc, KeyboardInterrupt) or interrupted_by() is not None


class PharmloadError(Exception):
    """Base class: a failure the user can act on, with the exit code it ends the run with."""

    exit_code = EXIT_LOAD_FAILED


class ConfigError(PharmloadError):
    """Bad flags, config file or environment: nothing was done."""

    exit_code = EXIT_USAGE


class LoadError(PharmloadError):
    """The load failed; its transaction was rolled back, so the database is unchanged."""

    exit_code = EXIT_LOAD_FAILED


class DatabaseError(LoadError):
    """A permanent database fault (authentication, permissions, bad schema): retrying cannot help."""


class TransientDatabaseError(LoadError):
    """A fault that a retry of the whole transaction may cure (connection lost, deadlock, ...)."""


class LockBusyError(LoadError):
    """Another load holds the tag's lock and the settings say not to wait."""


class StorageError(LoadError):
    """The image store could not be written (disk full, permissions, upload refused)."""


class InUseError(PharmloadError):
    """Rows of another table still refer to what a drop would remove: nothing was removed."""

    exit_code = EXIT_LOAD_FAILED


class VerifyMismatch(PharmloadError):
    """The load committed, but --verify-writes found rows or images that differ from the plan."""

    exit_code = EXIT_VERIFY_MISMATCH


def retry(fn: Callable[[], T], attempts: int, base_delay: float = 0.5, what: str = "load") -> T:
    """Run fn, retrying only TransientDatabaseError with exponential backoff and full jitter."""
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except TransientDatabaseError as exc:
            if attempt == attempts:
                raise
            delay = random.uniform(0, base_delay * 2 ** (attempt - 1))
            log.warning("%s: %s; retry %d of %d in %.1fs", what, exc, attempt, attempts - 1, delay)
            time.sleep(delay)
    raise AssertionError("unreachable")


def redact(text: str, secrets: tuple[str, ...]) -> str:
    """text with every secret replaced by ***: for messages that may quote a DSN."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text
