"""The README is a user's document: every command, flag, Make target and module it shows must exist
and parse as written, or a newcomer's first command fails."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from loader import options
from loader.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
SHELL_BLOCKS = re.findall(r"```bash\n(.*?)```", README, re.S)


def _shown_commands() -> list[str]:
    """pharmload command lines: those of the shell blocks and those in inline code."""
    lines = [line.split("#")[0].strip() for block in SHELL_BLOCKS for line in block.splitlines()]
    found = [line.removeprefix(".venv/bin/") for line in lines if re.match(r"(\.venv/bin/)?pharmload ", line)]
    prose = re.sub(r"```.*?```", "", README, flags=re.S)
    found += [span for span in re.findall(r"`([^`\n]+)`", prose) if span.startswith("pharmload ")]
    return found


def _argv(command: str, scrape: Path) -> list[str]:
    """The command's arguments, with optional parts ([...]) taken and placeholders made real."""
    text = command.replace("[", "").replace("]", "").replace("~/scrapes/2025-08-04", str(scrape))
    words = shlex.split(text)[1:]
    argv = [{"DIR": str(scrape), "N": "5"}.get(w, w) for w in words if w not in ("COMMAND", "...")]
    if argv[:1] == ["load"] and "--states-dir" not in argv:  # prose names a load's flag, not its folder
        argv += ["--states-dir", str(scrape), "--tag", "T"]
    return argv


def _exported(block_env: dict[str, str]) -> dict[str, str]:
    for block in SHELL_BLOCKS:
        for name, value in re.findall(r"(?:export |\s)([A-Z_]+)=(\S+)", block):
            block_env[name] = value.strip("'")
    return block_env


def test_shows_the_two_commands_and_each_backend_early() -> None:
    lines = README.splitlines()
    assert len(lines) < 300
    first = "\n".join(lines[:60])
    assert "make demo" in first and "make test" in first
    for backend in ("--backend postgresql", "--backend supabase"):
        assert re.search(rf"pharmload load {backend} --states-dir \S+ --tag \S+", first), backend
    assert re.search(r"pharmload load --states-dir \S+ --tag \S+", first)  # the embedded default


@pytest.mark.parametrize("command", _shown_commands())
def test_every_pharmload_command_shown_parses(command: str, tmp_path: Path) -> None:
    if "--help" in command or "--version" in command:
        return  # covered by test_command_line
    env = _exported({})
    settings = load_settings(_argv(command, tmp_path), env=env)
    assert settings.command == (options.command_of(_argv(command, tmp_path))[0] or "load")


def test_every_flag_and_variable_shown_exists() -> None:
    known = {f for o in options.OPTIONS for f in o.flags} | {"--help", "--version", "--config"}
    shown = set(re.findall(r"(?<![\w-])--[a-z][a-z-]+", README))
    assert shown <= known, sorted(shown - known)
    envs = {o.env for o in options.OPTIONS if o.env} | {"PHARMLOAD_CONFIG", "PHARMLOAD_TEST_DSN"}
    cron = (ROOT / "deploy/cron/pharmload.env.example").read_text(encoding="utf-8")
    for name in set(re.findall(r"PHARMLOAD_[A-Z_]+", README)):
        assert name in envs or name in cron, name


def test_every_command_in_the_table_exists() -> None:
    table = re.findall(r"^\| `pharmload ([a-z-]+)", README, re.M)
    assert set(table) == set(options.COMMANDS)


def test_every_make_target_shown_exists() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    targets = set(re.findall(r"^([A-Za-z_-]+):", makefile, re.M))
    shown = set(re.findall(r"make ([a-z][a-z_-]+)", README)) - {"install"} | {"install"}
    assert shown <= targets, sorted(shown - targets)


def test_layout_matches_the_tree() -> None:
    block = README.split("```\nloader/", 1)[1].split("```", 1)[0]
    for package in ("commands", "run", "scan", "db", "stores"):
        shown = re.search(rf"{package}/\s+(.*?)(?:\n\s+\w+/|\n\S)", block, re.S)
        assert shown, package
        modules = {p.stem for p in (ROOT / "loader" / package).glob("*.py")} - {"__init__"}
        listed = set(re.findall(r"\b([a-z_]+)\b", shown.group(1)))
        assert modules <= listed, (package, sorted(modules - listed))
    top = {p.name for p in (ROOT / "loader").glob("*.py")} - {"__init__.py", "__main__.py"}
    shown_top = set(re.findall(r"\b([a-z_]+\.py)\b", block))
    assert top <= shown_top, sorted(top - shown_top)
