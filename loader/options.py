"""Every flag of every command, in one table: which commands take it, its help group, its
environment variable, and how argparse reads it.

`build_parser` makes one parser per command from this table (settings.py runs it), so
`pharmload <command> --help` lists only that command's flags, grouped the way a user looks for
them. The flag names, environment variables and config-file keys are the ones documented in the
README; the old importer's flags (--states-dir, --tag, --backend, --batch-size, --max-workers,
--max-concurrent-uploads, --debug-log, --verify-writes, --single-file) keep their names and meanings.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import configargparse

BACKENDS = ("embedded", "postgresql", "supabase")
ENV = "PHARMLOAD_"

# What each command is for, and one example, for `pharmload --help` and `pharmload <command> --help`.
COMMANDS: dict[str, tuple[str, str]] = {
    "load": ("load a scrape folder into a dataset (the default command)",
             "pharmload load --states-dir ~/scrapes/2025-08-04 --tag Aug-04-scrape"),
    "verify": ("check a loaded dataset against its scrape and its stored screenshots",
               "pharmload verify --tag Aug-04-scrape --states-dir ~/scrapes/2025-08-04 --deep"),
    "status": ("show the datasets, their row and screenshot counts and their last load",
               "pharmload status --backend postgresql"),
    "runs": ("list recent loads from the load history",
             "pharmload runs --tag Aug-04-scrape --limit 5"),
    "init-db": ("create the schema, or migrate a database made by the old PharmChecker scripts",
                "pharmload init-db --backend postgresql --dsn postgresql://me@db.example/pharmchecker"),
    "drop": ("remove a dataset, its rows and its load history (screenshots are left to gc)",
             "pharmload drop --tag Aug-04-scrape --dry-run"),
    "gc": ("delete screenshots that no row references, from the database and the image store",
           "pharmload gc --dry-run --grace 24h"),
}

# Help groups, in the order a command's help shows them.
GROUPS = {
    "input": "input (what to load)",
    "database": "database",
    "images": "images (the screenshot store)",
    "safety": "safety",
    "performance": "performance",
    "output": "output",
}

ALL = frozenset(COMMANDS)
LOADING = frozenset({"load"})
CHECKING = frozenset({"load", "verify"})
STORE_USERS = frozenset({"load", "verify", "status", "gc"})
LOCKING = frozenset({"load", "drop", "gc"})
WRITING = frozenset({"load", "verify", "drop", "gc"})


@dataclass(frozen=True)
class Option:
    """One flag: its names, help group, the commands that take it, and argparse's keywords."""

    flags: tuple[str, ...]
    group: str
    commands: frozenset[str]
    env: str | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)


def _o(flag: str, group: str, commands: frozenset[str], env: str | None = None, *,
       env_name: str | None = None, **kwargs: Any) -> Option:
    """An option; `env` is the suffix of its PHARMLOAD_* variable, `env_name` a variable's whole name."""
    return Option((flag,), group, commands, env_name or (ENV + env if env else None), kwargs)


OPTIONS: tuple[Option, ...] = (
    # input
    _o("--states-dir", "input", CHECKING, "STATES_DIR", type=Path, metavar="DIR",
       help="the scrape folder: every *_parse.json below it is one search"),
    _o("--tag", "input", frozenset({"load", "verify", "runs", "drop"}), "TAG",
       help="the dataset tag (datasets.kind = 'states'); runs: only this tag's loads"),
    _o("--single-file", "input", LOADING, type=Path, metavar="FILE",
       help="load only this one *_parse.json (the old importer's testing flag)"),
    _o("--image-root", "input", CHECKING, type=Path, action="append", default=[], dest="image_roots",
       metavar="DIR", help="another folder screenshots may be found in (repeatable)"),
    _o("--source-timezone", "input", CHECKING, "SOURCE_TIMEZONE", default="UTC", metavar="ZONE",
       help="time zone of naive search timestamps"),
    _o("--full", "input", LOADING, "FULL", action="store_true",
       help="ignore the manifest: parse and hash every file again"),
    _o("--max-json-bytes", "input", CHECKING, "MAX_JSON_BYTES", type=int, default=10 * 1024 * 1024, metavar="N",
       help="a search file larger than this is rejected unread"),
    _o("--created-by", "input", LOADING, "CREATED_BY", default="pharmload", help="stored on a new dataset"),
    _o("--description", "input", LOADING, "DESCRIPTION", help="stored on a new dataset"),
    # database
    _o("--backend", "database", ALL, "BACKEND", choices=BACKENDS, default="embedded",
       help="where to load: the embedded server, a PostgreSQL server, or Supabase"),
    _o("--dsn", "database", ALL, "DSN", metavar="DSN",
       help="PostgreSQL connection string (default: DATABASE_URL, SUPABASE_DB_URL for supabase, or libpq's PG*)"),
    _o("--data-dir", "database", ALL, "DATA_DIR", type=Path, metavar="DIR", help="the embedded server's data folder"),
    _o("--database", "database", ALL, "DATABASE", default="pharmchecker", metavar="NAME",
       help="the database on the embedded server"),
    _o("--keep-server", "database", ALL, action="store_true",
       help="leave the embedded server running after the command"),
    _o("--statement-timeout", "database", WRITING, "STATEMENT_TIMEOUT", type=int, metavar="MS",
       help="statement timeout of the command's transaction, ms (default: the server's)"),
    _o("--retries", "database", WRITING, "RETRIES", type=int, default=4, metavar="N",
       help="attempts for transient database (and storage) errors"),
    _o("--retry-delay", "database", WRITING, type=float, default=0.5, metavar="SECONDS",
       help="the first retry's maximum delay; each next one doubles"),
    # images
    _o("--image-dir", "images", STORE_USERS, "IMAGE_DIR", type=Path, metavar="DIR",
       help="the local image store (embedded and postgresql backends)"),
    _o("--image-link", "images", LOADING, "IMAGE_LINK", choices=("copy", "link"), default="copy",
       help="local store: copies of the screenshots' bytes (a copy-on-write clone where the file system "
       "can), or hard links to the scrape's files (faster, but a scraper that rewrites a PNG in place "
       "then changes the stored evidence too)"),
    _o("--max-image-bytes", "images", CHECKING, "MAX_IMAGE_BYTES", type=int, default=50 * 1024 * 1024,
       metavar="N", help="a screenshot larger than this is not read; its rows load without it"),
    _o("--supabase-url", "images", STORE_USERS, env_name="SUPABASE_URL", metavar="URL",
       help="the Supabase project URL (storage); the key comes from SUPABASE_SERVICE_KEY only"),
    _o("--bucket", "images", STORE_USERS, "BUCKET", default="imagecache", metavar="NAME",
       help="the Supabase Storage bucket"),
    _o("--max-concurrent-uploads", "images", frozenset({"load", "verify", "gc"}), type=int, default=64,
       metavar="N", help="at most this many storage requests at a time (Supabase); fewer while the server "
       "answers slower or refuses (429/5xx)"),
    _o("--upload-timeout", "images", frozenset({"load", "verify", "gc"}), type=int, default=30,
       metavar="SECONDS", help="per storage request (Supabase)"),
    # safety
    _o("--dry-run", "safety", frozenset({"load", "drop", "gc"}), action="store_true",
       help="do everything inside a transaction that is rolled back; change nothing (drop, gc: count only)"),
    _o("--verify-writes", "safety", LOADING, nargs="?", const="on", default="off", choices=("off", "on", "deep"),
       help="after the commit, check the dataset against what the load covers (deep: re-hash screenshots)"),
    _o("--deep", "safety", frozenset({"verify"}), action="store_true",
       help="also re-hash every stored screenshot (Supabase: download it)"),
    _o("--lock-wait", "safety", LOCKING, "LOCK_WAIT", choices=("wait", "fail"), default="wait",
       help="when another load of the tag (or a gc) runs: wait for it, or fail at once"),
    _o("--max-rejects", "safety", LOADING, "MAX_REJECTS", type=int, metavar="N",
       help="rejected files tolerated with exit 0; more exit 1 after loading the rest (default: none)"),
    _o("--manifest-dir", "safety", frozenset({"load", "drop"}), "MANIFEST_DIR", type=Path, metavar="DIR",
       help="where manifests (resume and incremental state) are kept"),
    _o("--yes", "safety", frozenset({"drop"}), action="store_true",
       help="do not ask for confirmation (for scripts)"),
    _o("--grace", "safety", frozenset({"gc"}), "GC_GRACE", default="24h", metavar="AGE",
       help="store objects without an image_assets row are deleted only when older than this (e.g. 90m, 24h, 7d)"),
    # performance
    _o("--max-workers", "performance", CHECKING, "MAX_WORKERS", type=int, default=0, metavar="N",
       help="worker processes (0: one per CPU; 1: in-process)"),
    _o("--chunk-files", "performance", CHECKING, "CHUNK_FILES", type=int, default=2000, metavar="N",
       help="search files per worker task"),
    _o("--batch-size", "performance", LOADING, type=int, default=25, metavar="N",
       help="accepted for the old importer's scripts; unused (a load is one COPY, not batches)"),
    # output
    _o("--rejects", "output", LOADING, "REJECTS", type=Path, metavar="FILE",
       help="write the rejected files here (JSON Lines)"),
    _o("--report-json", "output", frozenset({"load", "verify", "status", "drop", "gc"}), "REPORT_JSON", type=Path,
       metavar="FILE", help="write the report as JSON"),
    _o("--metrics-file", "output", frozenset({"load", "drop", "gc"}), "METRICS_FILE", type=Path, metavar="FILE",
       help="write Prometheus textfile metrics here after every run"),
    _o("--progress", "output", CHECKING, "PROGRESS", choices=("auto", "on", "off"), default="auto",
       help="live progress on stderr (auto: only when stderr is a terminal)"),
    _o("--limit", "output", frozenset({"runs"}), type=int, default=20, metavar="N", help="loads to show"),
    _o("--debug-log", "output", ALL, "DEBUG_LOG", action="store_true", help="debug logging"),
    # test-only fault injection, never shown
    _o("--test-kill-at", "output", LOADING, "TEST_KILL_AT", help=argparse.SUPPRESS),
    _o("--test-terminate-at", "output", LOADING, "TEST_TERMINATE_AT", help=argparse.SUPPRESS),
)


def for_command(command: str) -> list[Option]:
    """The options a command takes, in table order."""
    return [o for o in OPTIONS if command in o.commands]


def not_taken(command: str, args: list[str]) -> str:
    """The message for arguments a command does not take: which commands take each flag, if any."""
    flag = next((a.split("=", 1)[0] for a in args if a.startswith("-")), None)
    if flag is None:
        return f"{command} takes no argument {args[0]!r} (pharmload {command} --help lists its flags)"
    takers = [c for c in COMMANDS if any(flag in o.flags and c in o.commands for o in OPTIONS)]
    if not takers:
        return f"unknown flag {flag} (pharmload {command} --help lists the flags of {command})"
    return (f"{command} does not take {flag}; it is a flag of {', '.join(takers)} "
            f"(pharmload {command} --help lists the flags of {command})")


def takes_value(flag: str) -> bool:
    """Whether a flag (of any command) is followed by a value when written without `=`."""
    for o in OPTIONS:
        if flag in o.flags:
            return o.kwargs.get("action") not in ("store_true",) and o.kwargs.get("nargs") != "?"
    return flag in ("-c", "--config")


def command_of(argv: list[str]) -> tuple[str | None, list[str]]:
    """The command named in argv and the arguments without it. A command may follow global-looking
    flags (`pharmload --backend postgresql status`); without one, argv is a load, as the old
    importer's command lines are. None when the first positional word is not a command."""
    skip = False
    for i, arg in enumerate(argv):
        if skip:
            skip = False
        elif arg == "--":
            break
        elif arg.startswith("-"):
            skip = "=" not in arg and takes_value(arg)
        else:
            return (arg, argv[:i] + argv[i + 1:]) if arg in COMMANDS else (None, argv)
    return "load", argv


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """The description and example kept as written; a default shown only where there is one."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if default in (None, False, [], "") or default is argparse.SUPPRESS or "%(default)" in text:
            return text
        return f"{text} (default: {default})"


def build_parser(command: str, config: Path, backend: str) -> configargparse.ArgumentParser:
    """The parser of one command: only its flags, in their help groups, with one example."""
    summary, example = COMMANDS[command]
    p = configargparse.ArgumentParser(
        prog=f"pharmload {command}",
        description=f"{summary[0].upper()}{summary[1:]}.",
        epilog=f"example:\n  {example}\n\nconfiguration: {CONFIG_NOTE}",
        default_config_files=[str(config)] if config.is_file() else [],
        config_file_parser_class=configargparse.IniConfigParser(["load", backend], False),
        args_for_setting_config_path=["-c", "--config"],
        config_arg_help_message="config file (default: the repository's config.ini)",
        ignore_unknown_config_file_keys=True,
        add_config_file_help=False,
        formatter_class=_HelpFormatter,
    )
    p.add_argument("--version", action=_Version)
    groups = {name: p.add_argument_group(title) for name, title in GROUPS.items()}
    for option in for_command(command):
        kwargs = dict(option.kwargs)
        if option.env is not None:
            kwargs["env_var"] = option.env
        groups[option.group].add_argument(*option.flags, **kwargs)
    return p


CONFIG_NOTE = ("config.ini < PHARMLOAD_* environment variables < flags; keys are the long flag\n"
               "names without dashes, in [load] or in the backend's section ([embedded], [postgresql], [supabase]).")


def overview() -> str:
    """`pharmload --help`: the commands, and where each one's flags are."""
    width = max(map(len, COMMANDS))
    lines = ["usage: pharmload [COMMAND] [FLAGS]", "",
             "Load a pharmacy license scrape into PharmChecker's database, and look after what is loaded.", "",
             "commands:"]
    lines += [f"  {name:<{width}}  {summary}" for name, (summary, _) in COMMANDS.items()]
    lines += ["", "`pharmload COMMAND --help` lists the flags of one command. Without a command the flags are",
              "a load's, as in the old importer's command lines.", "", f"configuration: {CONFIG_NOTE}",
              "", f"pharmload {version()}"]
    return "\n".join(lines)


class _Version(argparse.Action):
    """--version, looked up only when asked for: the package metadata costs ~20 ms of every run."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS,
                         help="show the program's version number and exit", **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        print(f"pharmload {version()}")  # to stdout, as argparse's own version action does
        parser.exit()


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("pharmload")
    except PackageNotFoundError:
        return "unknown (not installed)"
