"""DuckDB warehouse: connections, layered SQL models, typed queries.

Layers are DuckDB schemas with the same names as the SQL folders:
raw -> staging -> intermediate -> marts, plus ops (run history, quarantine, verdicts).
SQL values always travel as parameters; identifiers only come from this package's constants.
"""

from __future__ import annotations

import logging
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from orderguard import config

log = logging.getLogger(__name__)

LAYERS = ("raw", "staging", "intermediate", "marts", "ops")
_PARAM = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")
_IDENT = re.compile(r"^[a-z_][a-z0-9_]*$")


class WarehouseBusyError(RuntimeError):
    """Another process holds the DuckDB file (a scan is already running)."""


class WarehouseMissingError(FileNotFoundError):
    """A command that reads what scans wrote was pointed at no warehouse (a wrong --db)."""


# The shape of what later nights read back: the persistent ops.* tables and the
# staging.<table>_history tables, their columns and types. Bumped by hand when one changes
# (a table or column added, dropped, renamed or retyped), never for code that leaves them
# alone: an orderguard finding a warehouse written under a higher number refuses it before
# any work instead of failing in the middle of a night (a rollback after a bad release).
# tests/test_schema_version.py fails when those columns change and this number does not.
SCHEMA_VERSION = 1


class WarehouseTooNewError(RuntimeError):
    """The warehouse was written by an orderguard with a newer schema than this one."""

    def __init__(self, path: Path, found: int, written_by: str | None):
        self.path, self.found, self.written_by = path, found, written_by
        super().__init__(
            f"the warehouse {Path(path).absolute()} was written by a newer orderguard "
            f"(warehouse schema {found}, "
            f"revision {written_by or 'unknown'}) than this one (schema {SCHEMA_VERSION}, "
            f"revision {source_revision() or 'unknown'}), which cannot read it safely; nothing "
            "was changed. Run the newer orderguard on it, or, to stay on this version, restore "
            "a copy of the warehouse (and its models folder) saved before the upgrade")


@cache
def source_revision() -> str | None:
    """The git commit the running code is checked out at (installed from a checkout, as
    `make demo` installs it), '-dirty' when its package files differ from it; None outside a
    checkout. The package version stays 0.1.0 between releases, so this is what tells nights
    scanned by different code apart in run.json (an upgrade rebuilds lookups, may add flags).
    Asked once per process (every connection stamps it into ops.schema_version)."""
    package = Path(__file__).resolve().parent
    git = ["git", "-C", str(package)]
    try:
        head = subprocess.run([*git, "rev-parse", "--short=12", "HEAD"], capture_output=True,
                              text=True, timeout=10)
        if head.returncode:
            return None
        changed = subprocess.run([*git, "status", "--porcelain", "--untracked-files=no", "--", "."],
                                 capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return head.stdout.strip() + ("-dirty" if changed.stdout.strip() else "")


# grain: one row per schema version that has written to the warehouse. Never change these
# columns: every later version reads them to decide whether it may open the file at all.
SCHEMA_VERSION_DDL = """create table if not exists ops.schema_version (
    schema_version integer primary key, orderguard_revision varchar,
    first_written_at varchar, last_written_at varchar)"""


def stored_schema(con: duckdb.DuckDBPyConnection) -> tuple[int, str | None] | None:
    """The newest schema version that wrote to this warehouse and the revision that last
    wrote with it; None for a warehouse from before versions were recorded (or a new file)."""
    if not table_exists(con, "ops", "schema_version"):
        return None
    row = con.execute("select schema_version, orderguard_revision from ops.schema_version "
                      "order by schema_version desc limit 1").fetchone()
    return (int(row[0]), row[1]) if row else None


def check_schema(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    """Refuse a warehouse a newer schema wrote (WarehouseTooNewError). One without a
    recorded version, or an older one, is upgraded in place as each module touches its
    tables, as before."""
    stored = stored_schema(con)
    if stored is not None and stored[0] > SCHEMA_VERSION:
        raise WarehouseTooNewError(path, *stored)


def record_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Stamp this schema version and revision into ops.schema_version. Done by every
    connection that may write, before it writes: a newer version's failed night that
    migrated a table still keeps older versions out."""
    now = datetime.now().isoformat(timespec="seconds")
    con.execute(SCHEMA_VERSION_DDL)
    con.execute(
        "insert into ops.schema_version values ($v, $rev, $now, $now) on conflict (schema_version) "
        "do update set orderguard_revision = excluded.orderguard_revision, "
        "last_written_at = excluded.last_written_at",
        {"v": SCHEMA_VERSION, "rev": source_revision(), "now": now})


# empty strings and placeholder values are not identifiers. og_token_of takes text already
# trimmed and lower-cased: a model over millions of rows lowers each column once in a CTE,
# where og_token(x) lowered it twice and matched the list on the expression (10M orders:
# order_keys 14.7/13.5 -> 13.0/11.3 s)
OG_TOKEN_MACRO = (
    "create or replace temp macro og_token_of(t) as case when t in "
    "('', 'null', 'none', 'unknown', 'nan', '0', '-', '000000', 'n/a') then null else t end;\n"
    "create or replace temp macro og_token(x) as og_token_of(lower(trim(x)))"
)


def connect(db_path: str | Path | None = None, read_only: bool = False,
            memory_limit: str | None = None, must_exist: bool = False) -> duckdb.DuckDBPyConnection:
    """must_exist: refuse a path with no warehouse instead of creating an empty one there
    (train, backtest, feedback and allow work on what scans wrote)."""
    config.check_environment()  # before anything is opened or created
    limit = memory_limit or config.DUCKDB_MEMORY_LIMIT
    if not config.MEMORY_SIZE.fullmatch(limit):
        raise ValueError(f"not a DuckDB memory limit: {limit!r} (e.g. '8GB')")
    path = Path(db_path) if db_path else config.default_db_path()
    if must_exist and not path.is_file():
        raise WarehouseMissingError(
            f"no warehouse at {path}: pass --db with the file your scans write (scan's --db), "
            "or scan a night into it first")
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    try:
        con = duckdb.connect(str(path), read_only=read_only)
    except duckdb.IOException as exc:
        if "lock" in str(exc).lower():
            raise WarehouseBusyError(
                f"the warehouse {path} is in use by another process (is a scan running?): {exc}"
            ) from exc
        raise
    if str(path) != ":memory:":
        try:
            check_schema(con, path)
        except WarehouseTooNewError:
            con.close()
            raise
    con.execute(f"set memory_limit = '{limit}'")
    con.execute(f"set threads = {int(config.DUCKDB_THREADS)}")
    if not _someone_watching():
        # DuckDB redraws a bar for every query over 2 s: in a nightly job's log that is
        # hundreds of carriage-return lines between the scan's own per-stage progress
        con.execute("set enable_progress_bar_print = false")
    if not read_only:
        for layer in LAYERS:
            con.execute(f"create schema if not exists {layer}")
        if str(path) != ":memory:":
            record_schema(con)
    con.execute(OG_TOKEN_MACRO)
    return con


def _someone_watching() -> bool:
    """A person at a terminal or in a notebook, not a scheduler writing a log file. (A
    notebook is an IPython shell running; ipykernel merely imported, as nbclient does to
    start kernels, is not one.)"""
    if sys.stderr.isatty():
        return True
    ipython = sys.modules.get("IPython")
    return ipython is not None and ipython.get_ipython() is not None


@contextmanager
def text_uncompressed(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Tables written inside are stored with their text columns uncompressed. For tables
    rebuilt every night (the raw layer, the intermediate layer, the scores, the marts): at 10M orders,
    choosing and applying DuckDB's dictionary/FSST encodings cost 30-45 of the features
    stage's ~325 CPU-s (two A/B runs: 170 -> 150 and 175 -> 163 s wall) for a file ~8 GB
    smaller until the next night replaced them. Tables that accumulate night after night
    (the history, ops.*) keep the default compression for the rows each night adds (a
    warehouse's first night of history is its orders_checked, renamed, as written)."""
    con.execute("set disabled_compression_methods = 'fsst,dict_fsst,zstd'")
    try:
        yield
    finally:
        con.execute("reset disabled_compression_methods")


def sql_text(layer: str, name: str) -> str:
    return resources.files("orderguard").joinpath("sql", layer, f"{name}.sql").read_text("utf-8")


def bind(sql: str, params: dict[str, Any] | None) -> dict[str, Any]:
    """Only the parameters the statement names (DuckDB rejects unused ones)."""
    wanted = set(_PARAM.findall(sql))
    params = params or {}
    missing = wanted - params.keys()
    if missing:
        raise KeyError(f"SQL parameters not supplied: {sorted(missing)}")
    return {k: params[k] for k in wanted}


def ident(name: str) -> str:
    if not _IDENT.match(name):
        raise ValueError(f"not a safe identifier: {name!r}")
    return name


def build_model(
    con: duckdb.DuckDBPyConnection, layer: str, name: str, params: dict[str, Any] | None = None,
    as_view: bool = False, count_rows: bool = True,
) -> int | None:
    """Materialise sql/<layer>/<name>.sql as table <layer>.<name> (or define it as a view, for
    a model read once or twice); returns its row count, or None for a view asked not to count
    (counting a view runs its whole query)."""
    select = sql_text(layer, name)
    table = f"{ident(layer)}.{ident(name)}"
    if as_view:
        if bind(select, params):
            raise ValueError(f"{table}: a view cannot take parameters")
        drop_if(con, "table", layer, name)
        con.execute(f"create or replace view {table} as\n{select}")
        if not count_rows:
            return None
        return int(con.execute(f"select count(*) from {table}").fetchall()[0][0])
    drop_if(con, "view", layer, name)  # e.g. last night's staging.orders window view
    con.execute(f"create or replace table {table} as\n{select}", bind(select, params))
    return int(con.execute(f"select count(*) from {table}").fetchall()[0][0])


def query(con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any] | None = None) -> pl.DataFrame:
    return con.sql(sql, params=bind(sql, params) or None).pl()


def scalar(con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any] | None = None) -> Any:
    rows = con.execute(sql, bind(sql, params)).fetchall()
    return rows[0][0] if rows else None


def table_exists(con: duckdb.DuckDBPyConnection, layer: str, name: str) -> bool:
    return bool(
        scalar(
            con,
            "select count(*) from information_schema.tables "
            "where table_schema = $layer and table_name = $name",
            {"layer": layer, "name": name},
        )
    )


def relation_kind(con: duckdb.DuckDBPyConnection, layer: str, name: str) -> str | None:
    """What <layer>.<name> is: 'table', 'view', or None when there is no such relation."""
    found = scalar(con, "select table_type from information_schema.tables "
                   "where table_schema = $layer and table_name = $name",
                   {"layer": layer, "name": name})
    return {"BASE TABLE": "table", "VIEW": "view"}.get(found)


def drop_if(con: duckdb.DuckDBPyConnection, kind: str, layer: str, name: str) -> None:
    """Drop <layer>.<name> if it is a `kind` ('view' or 'table'), so the other kind of that
    name can replace it (DuckDB's create-or-replace never swaps a view for a table)."""
    if kind not in ("view", "table"):
        raise ValueError(f"not a relation kind: {kind!r}")
    if relation_kind(con, layer, name) == kind:
        con.execute(f"drop {kind} {ident(layer)}.{ident(name)}")


def write_frame(con: duckdb.DuckDBPyConnection, layer: str, name: str, frame: pl.DataFrame) -> None:
    """Replace <layer>.<name> with a Polars frame (Arrow hand-off, no Python rows)."""
    table = f"{ident(layer)}.{ident(name)}"
    arrow = frame.to_arrow()  # noqa: F841  (referenced by name in the SQL below)
    con.execute(f"create or replace table {table} as select * from arrow")


def append_frame(con: duckdb.DuckDBPyConnection, layer: str, name: str, frame: pl.DataFrame) -> None:
    """Append a Polars frame to an existing <layer>.<name> (columns matched by name)."""
    table = f"{ident(layer)}.{ident(name)}"
    con.register("_append_frame", frame.to_arrow())
    try:
        con.execute(f"insert into {table} by name select * from _append_frame")
    finally:
        con.unregister("_append_frame")
