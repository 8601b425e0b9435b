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

import configargparse

from loader.errors import ConfigError

BACKENDS = ("embedded", "postgresql", "supabase")
COMMANDS = ("load", "init-db", "status", "runs")
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
    max_concurrent_uploads: int = 10
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
    image_link: bool = True
    metrics_file: Path | None = None
    max_rejects: int | None = None
    max_json_bytes: int = 10 * 1024 * 1024
    max_image_bytes: int = 50 * 1024 * 1024
    progress: str = "auto"
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


def _build_parser(config: Path, backend: str) -> configargparse.ArgumentParser:
    p = configargparse.ArgumentParser(
        prog="pharmload",
        description="Load a pharmacy license scrape into PharmChecker's database.",
        default_config_files=[str(config)] if config.is_file() else [],
        config_file_parser_class=configargparse.IniConfigParser(["load", backend], False),
        args_for_setting_config_path=["-c", "--config"],
        ignore_unknown_config_file_keys=True,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    e = "PHARMLOAD_"
    p.add_argument("command", nargs="?", default="load", choices=COMMANDS, help="what to do")
    p.add_argument("--backend", choices=BACKENDS, default="embedded", env_var=e + "BACKEND")
    p.add_argument("--states-dir", type=Path, env_var=e + "STATES_DIR", help="scrape folder to load")
    p.add_argument("--single-file", type=Path, help="load only this one *_parse.json (testing)")
    p.add_argument("--tag", env_var=e + "TAG", help="dataset tag to load into")
    p.add_argument("--dsn", env_var=e + "DSN", help="PostgreSQL connection string (default: libpq's PG*)")
    p.add_argument("--data-dir", type=Path, env_var=e + "DATA_DIR", help="embedded server's data folder")
    p.add_argument("--database", default="pharmchecker", env_var=e + "DATABASE",
                   help="database name on the embedded server")
    p.add_argument("--image-dir", type=Path, env_var=e + "IMAGE_DIR", help="local image store folder")
    p.add_argument("--image-link", choices=("link", "copy"), default="link", env_var=e + "IMAGE_LINK",
                   help="put screenshots into the local store as hard links (fast) or copies (independent)")
    p.add_argument("--image-root", type=Path, action="append", default=[], dest="image_roots",
                   help="another folder screenshots may be read from (repeatable)")
    p.add_argument("--rejects", type=Path, env_var=e + "REJECTS", help="write rejected files here (JSONL)")
    p.add_argument("--report-json", type=Path, env_var=e + "REPORT_JSON", help="write the report as JSON")
    p.add_argument("--created-by", default="pharmload", env_var=e + "CREATED_BY")
    p.add_argument("--description", env_var=e + "DESCRIPTION")
    p.add_argument("--source-timezone", default="UTC", env_var=e + "SOURCE_TIMEZONE",
                   help="time zone of naive search timestamps")
    p.add_argument("--dry-run", action="store_true", help="plan and parse, write nothing")
    p.add_argument("--batch-size", type=int, default=25,
                   help="accepted for the old importer's scripts; a load is one COPY, not batches")
    p.add_argument("--chunk-files", type=int, default=2000, env_var=e + "CHUNK_FILES",
                   help="files per worker task")
    p.add_argument("--max-workers", type=int, default=0, env_var=e + "MAX_WORKERS",
                   help="worker processes (0: one per CPU; 1: in-process)")
    p.add_argument("--max-concurrent-uploads", type=int, default=10)
    p.add_argument("--debug-log", action="store_true", env_var=e + "DEBUG_LOG")
    p.add_argument("--verify-writes", nargs="?", const="on", default="off", choices=("off", "on", "deep"),
                   help="check the database against the plan after the load")
    p.add_argument("--keep-server", action="store_true",
                   help="leave the embedded server running after the command")
    p.add_argument("--limit", type=int, default=20, help="rows to show for 'runs'")
    p.add_argument("--manifest-dir", type=Path, env_var=e + "MANIFEST_DIR",
                   help="where manifests (resume and incremental state) are kept")
    p.add_argument("--full", action="store_true", env_var=e + "FULL",
                   help="ignore the manifest: parse and hash every file")
    p.add_argument("--retries", type=int, default=4, env_var=e + "RETRIES",
                   help="attempts for transient database errors")
    p.add_argument("--retry-delay", type=float, default=0.5, help="first retry's maximum delay, seconds")
    p.add_argument("--lock-wait", choices=("wait", "fail"), default="wait", env_var=e + "LOCK_WAIT",
                   help="when another load holds the tag: wait for it, or fail at once")
    p.add_argument("--statement-timeout", type=int, env_var=e + "STATEMENT_TIMEOUT",
                   help="statement timeout for the load's transaction, ms (default: the server's)")
    p.add_argument("--metrics-file", type=Path, env_var=e + "METRICS_FILE",
                   help="write Prometheus textfile metrics here after every run")
    p.add_argument("--max-rejects", type=int, env_var=e + "MAX_REJECTS",
                   help="rejected files tolerated (exit 0); more exits 1 after loading the rest "
                        "(default: no limit, any reject exits 1)")
    p.add_argument("--max-json-bytes", type=int, default=10 * 1024 * 1024, env_var=e + "MAX_JSON_BYTES",
                   help="a search file larger than this is rejected unread")
    p.add_argument("--max-image-bytes", type=int, default=50 * 1024 * 1024, env_var=e + "MAX_IMAGE_BYTES",
                   help="a screenshot larger than this is not read; its rows load without it")
    p.add_argument("--progress", choices=("auto", "on", "off"), default="auto", env_var=e + "PROGRESS",
                   help="live progress on stderr (auto: only when stderr is a terminal)")
    p.add_argument("--supabase-url", env_var="SUPABASE_URL", help="Supabase project URL (storage)")
    p.add_argument("--bucket", default="imagecache", env_var=e + "BUCKET", help="Supabase Storage bucket")
    p.add_argument("--upload-timeout", type=int, default=30, help="seconds per storage request")
    p.add_argument("--test-kill-at", env_var=e + "TEST_KILL_AT", help=argparse.SUPPRESS)
    p.add_argument("--test-terminate-at", env_var=e + "TEST_TERMINATE_AT", help=argparse.SUPPRESS)
    return p


def load_settings(argv: list[str], env: dict[str, str] | None = None) -> Settings:
    """Parse argv (without the program name) against env and the config file."""
    env = dict(os.environ) if env is None else env
    config, backend = _pre_parse(argv, env)
    parser = _build_parser(config, backend)
    try:
        ns = parser.parse_args(argv, env_vars=env)
    except SystemExit as exc:  # argparse already printed the message
        if exc.code == 0:
            raise
        raise ConfigError("invalid command line (see the message above)") from None
    return _settings_from(ns, backend, env)


def _settings_from(ns: argparse.Namespace, backend: str, env: dict[str, str]) -> Settings:
    root = default_data_root()
    dsn = ns.dsn or ""
    if not dsn and backend == "postgresql":
        dsn = env.get("DATABASE_URL", "")
    if not dsn and backend == "supabase":
        dsn = env.get("SUPABASE_DB_URL", "")
    settings = Settings(
        command=ns.command,
        backend=backend,
        states_dir=_expand(ns.states_dir),
        single_file=_expand(ns.single_file),
        tag=ns.tag,
        dsn=dsn,
        data_dir=_expand(ns.data_dir) or root / "pgdata",
        database=ns.database,
        image_dir=_expand(ns.image_dir) or root / "imagecache",
        image_roots=tuple(p.expanduser().resolve() for p in ns.image_roots),
        rejects=_expand(ns.rejects),
        report_json=_expand(ns.report_json),
        created_by=ns.created_by,
        description=ns.description,
        source_timezone=ns.source_timezone,
        dry_run=ns.dry_run,
        batch_size=ns.batch_size,
        chunk_files=ns.chunk_files,
        max_workers=ns.max_workers,
        max_concurrent_uploads=ns.max_concurrent_uploads,
        debug_log=ns.debug_log,
        verify_writes=ns.verify_writes,
        stop_embedded=not ns.keep_server,
        limit=ns.limit,
        manifest_dir=_expand(ns.manifest_dir) or root / "manifests",
        full=ns.full,
        retries=ns.retries,
        retry_delay=ns.retry_delay,
        lock_wait=ns.lock_wait == "wait",
        statement_timeout_ms=ns.statement_timeout,
        supabase_url=ns.supabase_url or "",
        supabase_key=_supabase_key(env),
        bucket=ns.bucket,
        upload_timeout=ns.upload_timeout,
        image_link=ns.image_link == "link",
        metrics_file=_expand(ns.metrics_file),
        max_rejects=ns.max_rejects,
        max_json_bytes=ns.max_json_bytes,
        max_image_bytes=ns.max_image_bytes,
        progress=ns.progress,
        test_kill_at=ns.test_kill_at,
        test_terminate_at=ns.test_terminate_at,
    )
    validate(settings)
    return settings


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
        if not s.tag:
            raise ConfigError("--tag is required")
        if s.states_dir is not None and not s.states_dir.is_dir():
            raise ConfigError(f"--states-dir {s.states_dir}: not a folder")
        if s.single_file is not None and not s.single_file.is_file():
            raise ConfigError(f"--single-file {s.single_file}: no such file")
        if s.backend == "supabase" and not (s.supabase_url and s.supabase_key):
            raise ConfigError("the supabase backend needs SUPABASE_URL and SUPABASE_SERVICE_KEY "
                              "(or SUPABASE_SERVICE_KEY_FILE) in the environment")
        if s.backend == "supabase" and not s.dsn:
            raise ConfigError("the supabase backend needs SUPABASE_DB_URL (or --dsn) for the database")
    if s.max_workers < 0 or s.chunk_files < 1 or s.max_concurrent_uploads < 1 or s.retries < 1:
        raise ConfigError("--max-workers must be >= 0; --chunk-files, --max-concurrent-uploads and --retries >= 1")
    try:
        ZoneInfo(s.source_timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"--source-timezone {s.source_timezone!r}: unknown time zone") from None
