"""One frozen `Settings` from config.ini < environment < flags.

This is the only module that reads the environment or the config file: every other module gets
what it needs from the `Settings` passed down to it, so a test or the cron wrapper can build one
directly. The config file has a `[load]` section of defaults and one section per backend; the
backend's section overrides `[load]`, so `config.ini` can hold a DSN or an image folder per backend.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loader import options
from loader.errors import ConfigError
from loader.options import BACKENDS

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "config.ini"
ROOT_DATA_DIR = Path("/var/lib/pharmload")


@dataclass(frozen=True)
class Settings:
    """Everything a run needs; secrets are kept out of repr() so they never reach a log."""

    command: str = "load"
    backend: str = "embedded"
    states_dir: Path | None = None
    single_file: Path | None = None
    tag: str | None = None
    dsn: str = field(default="", repr=False)
    data_dir: Path = field(default_factory=lambda: default_data_root() / "pgdata")
    database: str = "pharmchecker"
    image_dir: Path = field(default_factory=lambda: default_data_root() / "imagecache")
    image_roots: tuple[Path, ...] = ()
    rejects: Path | None = None
    report_json: Path | None = None
    created_by: str = "pharmload"
    description: str | None = None
    source_timezone: str = "UTC"
    dry_run: bool = False
    batch_size: int = 25
    chunk_files: int = 2000
    max_workers: int = 0
    max_concurrent_uploads: int = 64
    debug_log: bool = False
    verify_writes: str = "off"
    stop_embedded: bool = True
    limit: int = 20
    manifest_dir: Path = field(default_factory=lambda: default_data_root() / "manifests")
    full: bool = False
    retries: int = 4
    retry_delay: float = 0.5
    lock_wait: bool = True
    statement_timeout_ms: int | None = None
    supabase_url: str = ""
    supabase_key: str = field(default="", repr=False)
    bucket: str = "imagecache"
    upload_timeout: int = 30
    image_link: bool = False         # local store: hard links instead of copies (--image-link link)
    metrics_file: Path | None = None
    max_rejects: int | None = None
    max_json_bytes: int = 10 * 1024 * 1024
    max_image_bytes: int = 50 * 1024 * 1024
    progress: str = "auto"
    deep: bool = False               # verify: re-hash every stored screenshot
    yes: bool = False                # drop: no confirmation asked
    grace_seconds: float = 86400.0   # gc: age below which an object without a row is kept
    test_kill_at: str | None = None
    test_terminate_at: str | None = None

    @property
    def workers(self) -> int:
        """Worker processes to use: 0 means one per CPU."""
        return self.max_workers if self.max_workers > 0 else (os.cpu_count() or 1)

    @property
    def secrets(self) -> tuple[str, ...]:
        """Strings that must never be printed: the DSN's password and the Supabase key, if any."""
        return tuple(s for s in (dsn_password(self.dsn), self.supabase_key) if s)

    @property
    def target_id(self) -> str:
        """Names the database and image store a load goes to, without any secret in it."""
        where = self.dsn.replace(dsn_password(self.dsn), "") if dsn_password(self.dsn) else self.dsn
        store = f"{self.supabase_url}|{self.bucket}" if self.backend == "supabase" else str(self.image_dir)
        if self.backend == "embedded":
            where = f"{self.data_dir}|{self.database}"
        key = f"{self.backend}|{where}|{store}"
        return hashlib.sha256(key.encode()).hexdigest()[:16]

    @property
    def parse_key(self) -> str:
        """The settings a file's parse outcome depends on, besides its own bytes: a file rejected
        under other ones is parsed again."""
        return f"{self.source_timezone}|{self.max_json_bytes}"

    @property
    def tree(self) -> Path:
        """The folder a load walks: --states-dir, or the folder of --single-file."""
        folder = self.states_dir or (self.single_file.parent if self.single_file else None)
        if folder is None:
            raise ConfigError("give --states-dir or --single-file")
        return folder

    @property
    def manifest_file(self) -> Path:
        """This (states folder, tag)'s manifest: one per pair, named by a digest of both."""
        key = hashlib.sha256(f"{self.tree.resolve()}\0{self.tag or ''}".encode()).hexdigest()[:20]
        return self.manifest_dir / f"{key}.parquet"

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


def default_data_root() -> Path:
    """Where the embedded server and image store live by default.

    As root, a system path: the PostgreSQL wheel then runs the server as a separate system user and
    makes every ancestor folder of its data folder world-readable, which must never happen to a
    private home folder such as /root.
    """
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        return ROOT_DATA_DIR
    import platformdirs  # here, not at the top: ~6 ms of every start-up, needed by no root run

    return Path(platformdirs.user_data_dir("pharmload"))


def dsn_password(dsn: str) -> str:
    """The password in a URL or key=value DSN, without importing the database driver."""
    if "://" in dsn:
        netloc = dsn.split("://", 1)[1].split("/", 1)[0].split("?", 1)[0]
        userinfo = netloc.rsplit("@", 1)[0] if "@" in netloc else ""
        return userinfo.split(":", 1)[1] if ":" in userinfo else ""
    for part in dsn.split():
        key, _, value = part.partition("=")
        if key.strip() == "password":
            return value.strip().strip("'")
    return ""


def _pre_parse(argv: list[str], env: dict[str, str]) -> tuple[Path, str]:
    """The config file and backend, needed before the real parse to pick the config sections."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config", "-c")
    pre.add_argument("--backend")
    known, _ = pre.parse_known_args(argv)
    config = Path(known.config or env.get("PHARMLOAD_CONFIG") or DEFAULT_CONFIG)
    if known.config and not config.is_file():
        raise ConfigError(f"config file not found: {config}")
    backend = known.backend or env.get("PHARMLOAD_BACKEND") or _config_backend(config) or "embedded"
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}: choose one of {', '.join(BACKENDS)}")
    return config, backend


def _config_backend(config: Path) -> str | None:
    import configparser

    if not config.is_file():
        return None
    parser = configparser.ConfigParser()
    parser.read(config)
    value = parser.get("load", "backend", fallback="").strip()
    return value or None


def load_settings(argv: list[str], env: dict[str, str] | None = None) -> Settings:
    """Parse argv (without the program name) against env and the config file."""
    env = dict(os.environ) if env is None else env
    command, rest = options.command_of(argv)
    if command is None:
        first = next(a for a in argv if not a.startswith("-"))
        raise ConfigError(f"unknown command {first!r}: choose one of {', '.join(options.COMMANDS)} "
                          "(pharmload --help lists them)")
    config, backend = _pre_parse(rest, env)
    parser = options.build_parser(command, config, backend)
    try:
        ns, unknown = parser.parse_known_args(rest, env_vars=env)
    except SystemExit as exc:  # argparse already printed the message (or the help)
        if exc.code == 0:
            raise
        raise ConfigError("invalid command line (see the message above)") from None
    if unknown:
        raise ConfigError(options.not_taken(command, unknown))
    return _settings_from(command, ns, backend, env)


# Flags whose value goes into the field of the same name as it is.
_SAME = ("tag", "database", "created_by", "description", "source_timezone", "dry_run", "batch_size", "chunk_files",
         "max_workers", "max_concurrent_uploads", "debug_log", "verify_writes", "limit", "full", "retries",
         "retry_delay", "bucket", "upload_timeout", "max_rejects", "max_json_bytes", "max_image_bytes", "progress",
         "test_kill_at", "test_terminate_at", "deep", "yes")
_PATHS = ("states_dir", "single_file", "rejects", "report_json", "metrics_file")
STORE_COMMANDS = ("load", "verify", "status", "gc")  # the commands that open the image store


def _settings_from(command: str, ns: argparse.Namespace, backend: str, env: dict[str, str]) -> Settings:
    """The Settings of one command: its flags' values; fields of flags it does not take keep
    their defaults."""
    root = default_data_root()
    given = vars(ns)
    fields: dict[str, Any] = {name: given[name] for name in _SAME if name in given}
    fields |= {name: _expand(given[name]) for name in _PATHS if name in given}
    dsn = given.get("dsn") or ""
    if not dsn and backend == "postgresql":
        dsn = env.get("DATABASE_URL", "")
    if not dsn and backend == "supabase":
        dsn = env.get("SUPABASE_DB_URL", "")
    if "image_roots" in given:
        fields["image_roots"] = tuple(p.expanduser().resolve() for p in given["image_roots"])
    if "statement_timeout" in given:
        fields["statement_timeout_ms"] = given["statement_timeout"]
    if "lock_wait" in given:
        fields["lock_wait"] = given["lock_wait"] == "wait"
    if "image_link" in given:
        fields["image_link"] = given["image_link"] == "link"
    if "grace" in given:
        fields["grace_seconds"] = duration(given["grace"], "--grace")
    settings = Settings(
        command=command,
        backend=backend,
        dsn=dsn,
        data_dir=_expand(given.get("data_dir")) or root / "pgdata",
        image_dir=_expand(given.get("image_dir")) or root / "imagecache",
        manifest_dir=_expand(given.get("manifest_dir")) or root / "manifests",
        stop_embedded=not given.get("keep_server", False),
        supabase_url=given.get("supabase_url") or "",
        supabase_key=_supabase_key(env) if command in STORE_COMMANDS else "",
        **fields,
    )
    validate(settings)
    return settings


def duration(text: str, flag: str) -> float:
    """Seconds of a duration written as a number with an optional unit: 90, 90s, 15m, 24h, 7d."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    text = text.strip().lower()
    unit = units.get(text[-1:])
    number = text[:-1] if unit is not None else text
    try:
        seconds = float(number) * (unit or 1)
    except ValueError:
        raise ConfigError(f"{flag} {text!r}: not a duration (write e.g. 90m, 24h or 7d)") from None
    if seconds < 0:
        raise ConfigError(f"{flag} {text!r}: a duration cannot be negative")
    return seconds


def _supabase_key(env: dict[str, str]) -> str:
    """The service key, only from the environment or a file it names (never a flag: ps shows flags)."""
    if env.get("SUPABASE_SERVICE_KEY"):
        return env["SUPABASE_SERVICE_KEY"].strip()
    path = env.get("SUPABASE_SERVICE_KEY_FILE")
    if path:
        try:
            return Path(path).expanduser().read_text().strip()
        except OSError as exc:
            raise ConfigError(f"SUPABASE_SERVICE_KEY_FILE {path}: {exc.strerror}") from None
    return ""


def _expand(path: Path | None) -> Path | None:
    return path.expanduser().absolute() if path is not None else None


def validate(s: Settings) -> None:
    """Refuse settings that cannot work, before anything is touched."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    if s.command == "load":
        if s.states_dir is None and s.single_file is None:
            raise ConfigError("--states-dir is required (or --single-file)")
        if s.single_file is not None and not s.single_file.is_file():
            raise ConfigError(f"--single-file {s.single_file}: no such file")
    if s.command in ("load", "verify", "drop") and not s.tag:
        raise ConfigError("--tag is required")
    if s.states_dir is not None and not s.states_dir.is_dir():
        raise ConfigError(f"--states-dir {s.states_dir}: not a folder")
    if s.backend == "supabase" and s.command in ("load", "verify", "gc"):
        if not (s.supabase_url and s.supabase_key):
            raise ConfigError("the supabase backend needs SUPABASE_URL and SUPABASE_SERVICE_KEY "
                              "(or SUPABASE_SERVICE_KEY_FILE) in the environment")
        if not s.dsn:
            raise ConfigError("the supabase backend needs SUPABASE_DB_URL (or --dsn) for the database")
    if s.max_workers < 0 or s.chunk_files < 1 or s.max_concurrent_uploads < 1 or s.retries < 1:
        raise ConfigError("--max-workers must be >= 0; --chunk-files, --max-concurrent-uploads and --retries >= 1")
    try:
        ZoneInfo(s.source_timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"--source-timezone {s.source_timezone!r}: unknown time zone") from None
