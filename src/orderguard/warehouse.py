"""DuckDB warehouse: connections, layered SQL models, typed queries.

Layers are DuckDB schemas with the same names as the SQL folders:
raw -> staging -> intermediate -> marts, plus ops (run history, quarantine, verdicts).
SQL values always travel as parameters; identifiers only come from this package's constants.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
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
    con.execute(f"set memory_limit = '{limit}'")
    con.execute(f"set threads = {int(config.DUCKDB_THREADS)}")
    if not _someone_watching():
        # DuckDB redraws a bar for every query over 2 s: in a nightly job's log that is
        # hundreds of carriage-return lines between the scan's own per-stage progress
        con.execute("set enable_progress_bar_print = false")
    if not read_only:
        for layer in LAYERS:
            con.execute(f"create schema if not exists {layer}")
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
