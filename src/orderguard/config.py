"""Paths and defaults in one place (cookiecutter-data-science style)."""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo


class ScanOptionsError(ValueError):
    """Scan options that cannot make a scan (named in the message). Here, not in scan.py, so
    the CLI can catch it without importing the pipeline for every command."""


def project_root() -> Path:
    """The orderguard checkout: $ORDERGUARD_ROOT, else the nearest parent of the working
    directory holding this project's pyproject.toml, else the working directory."""
    env = os.environ.get("ORDERGUARD_ROOT")
    if env:
        return Path(env).resolve()
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        pyproject = folder / "pyproject.toml"
        if pyproject.is_file() and 'name = "orderguard"' in pyproject.read_text(errors="ignore"):
            return folder
    return here


def data_dir() -> Path:
    return project_root() / "data"


def models_dir(db_path: Path | str | None = None) -> Path:
    """The isolation forest's folder: models/ for the project's warehouse, <name>.models/
    beside any other, so a scratch warehouse never loads the nightly one's forest nor saves
    its own over it (a saved forest is loaded, never refit, until `orderguard train`)."""
    if db_path is None or Path(db_path).resolve() == default_db_path().resolve():
        return project_root() / "models"
    db = Path(db_path)
    return db.with_name(db.stem + ".models")


def default_db_path() -> Path:
    return data_dir() / "warehouse.duckdb"


def prefect_home() -> Path:
    return data_dir() / "prefect"


# DuckDB resources are set explicitly so a nightly scan never fights the machine.
DUCKDB_MEMORY_LIMIT = os.environ.get("ORDERGUARD_DUCKDB_MEMORY", "8GB")
# ... and less in the stages where Python holds large frames at the same time (graphs, score,
# publish): DuckDB keeps its cache up to its limit, and both together passed 12 GiB at 10M
DUCKDB_MEMORY_BESIDE_PYTHON = os.environ.get("ORDERGUARD_DUCKDB_MEMORY_BESIDE_PYTHON", "3GB")
_THREADS_SET = os.environ.get("ORDERGUARD_DUCKDB_THREADS", str(os.cpu_count() or 2))
# 0 marks a value that is not a whole number >= 1: check_environment says so (raising here,
# on import, would break even `orderguard --help`)
DUCKDB_THREADS = int(_THREADS_SET) if _THREADS_SET.strip().isdigit() else 0
MEMORY_SIZE = re.compile(r"\d+(\.\d+)?\s*[KMGT]i?B", re.IGNORECASE)  # as DuckDB reads one


def check_environment() -> None:
    """The ORDERGUARD_DUCKDB_* settings, checked before a command does any work; a bad one
    is a ScanOptionsError naming the variable (exit 2), not a DuckDB error mid-scan."""
    if DUCKDB_THREADS < 1:
        raise ScanOptionsError(f"ORDERGUARD_DUCKDB_THREADS={_THREADS_SET!r} is not a whole number "
                               "of threads, 1 or more")
    for name, value in (("ORDERGUARD_DUCKDB_MEMORY", DUCKDB_MEMORY_LIMIT),
                        ("ORDERGUARD_DUCKDB_MEMORY_BESIDE_PYTHON", DUCKDB_MEMORY_BESIDE_PYTHON)):
        if not MEMORY_SIZE.fullmatch(value.strip()):
            raise ScanOptionsError(f"{name}={value!r} is not a memory size such as 8GB or 3GiB")

# All timestamps are stored as naive Asia/Shanghai wall-clock time.
TIMEZONE = "Asia/Shanghai"


def local_now() -> datetime:
    """Now as the stored times read it (naive Asia/Shanghai wall clock), whatever the
    machine's own zone: an allow-list entry's expiry is compared with order times."""
    return datetime.now(ZoneInfo(TIMEZONE)).replace(tzinfo=None, microsecond=0)


def toml_key_problem(where: str, spec: Any, allowed: set[str]) -> str | None:
    """What is wrong with the keys of one table of a settings file (rules.toml,
    programme.toml): not a table, or a key it does not know, with the nearest known one."""
    if not isinstance(spec, dict):
        return f"{where}: expected a table of keys, not {spec!r}"
    for key in sorted(set(spec) - allowed):
        near = difflib.get_close_matches(key, sorted(allowed), n=1)
        hint = f" (did you mean {near[0]!r}?)" if near else f" (known: {', '.join(sorted(allowed))})"
        return f"{where}: unknown key {key!r}{hint}"
    return None


def read_settings_toml(path: str | Path | None, packaged: str, packaged_source: str, what: str,
                       error: type[Exception]) -> tuple[dict, str]:
    """A settings file's tables and the name its messages give it: the packaged `packaged`
    file when `path` is None. A file that cannot be read, or bad TOML, raises `error`."""
    if path is None:
        return tomllib.loads(resources.files("orderguard").joinpath(packaged).read_text("utf-8")), \
            packaged_source
    source = str(path)
    try:
        text = Path(path).read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"{source}: cannot read the {what} ({exc})") from exc
    try:
        return tomllib.loads(text), source
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{source}: {exc}") from exc


def is_toml_number(value: Any) -> bool:
    """TOML keeps "5" a string and true a bool: neither is a number of points, a rate or a
    threshold."""
    return isinstance(value, int | float) and not isinstance(value, bool)
