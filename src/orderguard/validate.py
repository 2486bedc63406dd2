"""Validate: raw -> staging, with every bad input row sent to ``ops.quarantine``.

``stage`` runs the SQL models in ``sql/staging`` (set-based, no Python per row):

    batch_clock            one row: as_of, the batch's latest plausible order time
    accounts_checked  -> accounts
    orders_checked    -> orders        (buyers must be accepted accounts or known accounts)
    products_checked  -> products
    commissions_checked -> commissions (order_id must be an accepted order)
    quarantine                          this run's rejected rows, copied into ops.quarantine

Each ``<table>_checked`` model types every contract column and writes, for a failing row,
``_reason`` (every problem, in plain English, joined by "; "), ``_column`` (the first failing
column; every problem starts with the column it is about) and ``_value`` (that column's
trimmed text, first 200 characters). ``staging.<table>`` keeps the rows with no problem:
contract columns in contract order with staging types, plus ``_row`` and ``_file``. The
``_checked`` tables are dropped once quarantine and staging are written. The parsing and
check helpers are temporary DuckDB macros in ``sql/staging/_macros.sql`` (not a model).

``ops.quarantine`` (run_id, table_name, file, row_number, column_name, value, reason) gets
one row per rejected input row; staging the same ``run_id`` again replaces that run's rows.

Staging types: string -> VARCHAR (trimmed, '' -> NULL); int -> INTEGER; decimal ->
DECIMAL(18,2); timestamp -> TIMESTAMP, naive Asia/Shanghai wall time (values with an
offset or Z are converted); bool -> BOOLEAN; enum -> lower-cased VARCHAR from the contract's
values, after the aliases below.

Accepted spellings
    timestamps  ISO 8601 with T or space, with or without seconds, fraction and offset
                (Z, +08:00, +0800, +08); 2026-10-01; 2026/10/01 12:00; 2026/10/1 8:05:03;
                2026年10月1日 8:05; 20261001 and 20261001120000; Excel serial day numbers
                (46296.5 = 2026-10-01 12:00); Unix epoch seconds (10 digits) and
                milliseconds (13 digits), both UTC. Day-first and month-first slashed
                dates (01/10/2026) are not accepted: they are ambiguous.
    amounts     1234.5, 1,234.50, ¥1,234.50, ￥99, RMB 100, CNY 100, 100元; rounded to
                cents. "12,50" is rejected (a comma is only a thousands separator).
    ints        3, +3, 3.0 (3.5 is rejected, not rounded)
    bools       true/false, t/f, 1/0, yes/no, y/n, 是/否 (any case)

Rejected rows (``ops.quarantine``, one row per bad input row)
    a record the CSV reader could not split into the header's fields (ingest's
    ``raw.unreadable_records``: the reader's complaint, the record's text); a required
    value missing; a value that does not parse as its type; an enum value
    outside the contract; quantity < 1; a negative amount, refund_amount, price, cost or
    commission amount; review_rating outside 1-5; commission level < 1; paid_at more than
    a minute before created_at; refund_amount above amount; a time before 2000, after
    2099 or more than a day after ``staging.batch_clock.as_of`` (the latest created_at,
    robust to a few stray far-future values); a text value longer than
    ``MAX_TEXT_LENGTH`` characters; a repeated key (order_id, account_id, product_id,
    commission (order_id, level)) -- the first occurrence in the file is kept whatever its
    other problems, later ones are rejected naming the first row; an order whose buyer_id
    is neither an accepted account of this input nor in ``known_accounts_table``; a
    commission whose order_id is not an accepted order. Rejections cascade on purpose: an
    account rejected for a bad registered_at makes its orders dangling.

Formula-like (``=HYPERLINK(...)``, ``+cmd``, ``@SUM``) and HTML text is data and passes
through unchanged; whoever writes CSV or HTML for people must escape it.
"""

from __future__ import annotations

import logging
import re
import time
from contextlib import nullcontext
from dataclasses import dataclass

import duckdb

from orderguard import contract, warehouse
from orderguard.ingest import create_empty_raw, create_unreadable_records

log = logging.getLogger(__name__)

MAX_TEXT_LENGTH = 1000  # characters; longer contract text values are rejected

# Lower-cased input value -> contract enum value (contract values themselves pass as is).
ORDER_STATUS_ALIASES: dict[str, str] = {
    "待付款": "created", "待支付": "created", "未付款": "created", "已下单": "created",
    "unpaid": "created", "pending_payment": "created",
    "已付款": "paid", "已支付": "paid", "待发货": "paid",
    "已发货": "shipped", "待收货": "shipped",
    "已签收": "delivered", "已收货": "delivered", "已核销": "delivered",
    "已完成": "completed", "交易成功": "completed", "交易完成": "completed",
    "complete": "completed",
    "已退款": "refunded", "退款成功": "refunded",
    "已取消": "cancelled", "已关闭": "cancelled", "交易关闭": "cancelled",
    "canceled": "cancelled", "closed": "cancelled",
}
COMMISSION_STATUS_ALIASES: dict[str, str] = {
    "待结算": "pending", "未结算": "pending",
    "已结算": "settled",
    "已退回": "reversed", "已扣回": "reversed", "已撤销": "reversed", "reverted": "reversed",
}

QUARANTINE_DDL = """
create table if not exists ops.quarantine (
    run_id varchar, table_name varchar, file varchar, row_number bigint,
    column_name varchar, value varchar, reason varchar
)"""

_MODELS = (
    "batch_clock",
    "accounts_checked", "accounts",
    "orders_checked", "orders",
    "products_checked", "products",
    "commissions_checked", "commissions",
    "quarantine",
)
# staging.orders only filters orders_checked and is read once, by the history merge: a view,
# not a second copy of every order (history.use_window drops orders_checked after the merge;
# on a warehouse's first night the merge turns orders_checked into the history instead)
_VIEW_MODELS = {"orders"}
# The checked tables live one night (merged into the history, or on a first night renamed
# into it), so their text is stored uncompressed: choosing encodings for 10M orders cost 8
# of orders_checked's ~43 s (17 CPU-s) for a smaller first night of history. The staged
# tables that become history (commissions on a first night) keep the default.
_ONE_NIGHT_MODELS = {"accounts_checked", "orders_checked", "products_checked", "commissions_checked"}
_TABLE_NAME = re.compile(r"^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)?$")


@dataclass
class StageResult:
    counts: dict[str, dict[str, int]]  # per table: {"read": n, "accepted": n, "quarantined": n}


def stage(
    con: duckdb.DuckDBPyConnection, run_id: str, known_accounts_table: str | None = None
) -> StageResult:
    """Build the staging tables from ``raw`` and record rejected rows under ``run_id``.

    ``known_accounts_table`` names a table with an ``account_id`` column (accounts seen on
    earlier nights) that orders' buyer_id may also refer to; None or a table that does not
    exist yet means "only this input's accounts".
    """
    for table in contract.TABLES.values():
        if not warehouse.table_exists(con, "raw", table.name):
            if table.required:
                raise RuntimeError(f"raw.{table.name} does not exist: run ingest.load_raw first")
            create_empty_raw(con, table)
    # raw tables made without load_raw (a partition's stand-ins, tests) have none
    create_unreadable_records(con, replace=False)
    _create_macros(con)
    _create_known_accounts_view(con, known_accounts_table)
    params = {
        "run_id": run_id,
        "max_text_length": MAX_TEXT_LENGTH,
        "order_statuses": list(contract.ORDER_STATUSES),
        "status_alias_keys": list(ORDER_STATUS_ALIASES),
        "status_alias_values": list(ORDER_STATUS_ALIASES.values()),
        "commission_statuses": list(contract.COMMISSION_STATUSES),
        "commission_alias_keys": list(COMMISSION_STATUS_ALIASES),
        "commission_alias_values": list(COMMISSION_STATUS_ALIASES.values()),
        "order_columns": list(contract.ORDERS.column_names),
        "account_columns": list(contract.ACCOUNTS.column_names),
        "product_columns": list(contract.PRODUCTS.column_names),
        "commission_columns": list(contract.COMMISSIONS.column_names),
    }
    for model in _MODELS:
        started = time.perf_counter()
        encodings = warehouse.text_uncompressed(con) if model in _ONE_NIGHT_MODELS else nullcontext()
        with encodings:
            rows = warehouse.build_model(con, "staging", model, params,
                                         as_view=model in _VIEW_MODELS)
        log.info("staging.%s: %d rows in %.1f s", model, rows, time.perf_counter() - started)

    counts: dict[str, dict[str, int]] = {}
    for name in contract.TABLES:
        read = warehouse.scalar(con, f"select count(*) from raw.{name}") + warehouse.scalar(
            con, "select count(*) from raw.unreadable_records where table_name = $name",
            {"name": name})
        accepted = warehouse.scalar(con, f"select count(*) from staging.{name}")
        quarantined = warehouse.scalar(
            con, "select count(*) from staging.quarantine where table_name = $name",
            {"name": name},
        )
        counts[name] = {"read": int(read), "accepted": int(accepted),
                        "quarantined": int(quarantined)}
        if read != accepted + quarantined:  # a bug, never an input problem
            raise AssertionError(f"{name}: read {read} != accepted {accepted} + "
                                 f"quarantined {quarantined}")

    con.execute(QUARANTINE_DDL).fetchall()
    con.execute("begin transaction").fetchall()
    try:
        con.execute(
            "delete from ops.quarantine where run_id = $run_id", {"run_id": run_id}
        ).fetchall()
        con.execute("insert into ops.quarantine by name select * from staging.quarantine").fetchall()
        con.execute("commit").fetchall()
    except BaseException:
        con.execute("rollback").fetchall()
        raise
    for name in contract.TABLES:
        if name not in _VIEW_MODELS:
            con.execute(f"drop table if exists staging.{name}_checked").fetchall()
    return StageResult(counts)


def _create_macros(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(warehouse.sql_text("staging", "_macros")).fetchall()


def _create_known_accounts_view(con: duckdb.DuckDBPyConnection, table: str | None) -> None:
    """Temp view ``staging_known_accounts(account_id)`` over ``table``, or empty."""
    source = "(select null::varchar as account_id where false)"
    if table:
        if not _TABLE_NAME.match(table):
            raise ValueError(f"not a safe table name: {table!r}")
        schema, _, name = table.rpartition(".")
        exists = warehouse.scalar(
            con,
            "select count(*) from information_schema.columns where table_name = $name "
            "and column_name = 'account_id' and table_schema = coalesce(nullif($schema, ''), "
            "current_schema())",
            {"name": name, "schema": schema},
        )
        if exists:
            source = table
        else:
            log.info("known accounts table %s does not exist yet; using this input only", table)
    con.execute(
        "create or replace temp view staging_known_accounts as "
        f"select account_id::varchar as account_id from {source}"
    ).fetchall()
