"""Nights and history: each scan adds one night's export to the warehouse's history and
scores it against a lookback window, so a ring that builds up over weeks is still seen
without rescanning everything.

    staging.<table>            tonight's validated rows (validate.stage)
      -> staging.<table>_history   every night so far; a row from a later night wins
      -> staging.<table>           replaced by the lookback window the features read
                                   (orders and accounts: views over the history)
    ops.tonight_orders         the orders of tonight's export: the ones published

A later night's row for a known order is an update (a refund, a delivery), not a duplicate;
rescanning an earlier night never undoes a later night's update, and rescanning a night
replaces its results instead of doubling them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date, datetime, timedelta

import duckdb

from orderguard import warehouse

log = logging.getLogger(__name__)

# (table, key columns) whose history is kept; products keep their latest row.
HISTORY_KEYS = {
    "orders": ("order_id",),
    "accounts": ("account_id",),
    "products": ("product_id",),
    # one commission per order and level, as validation checks one export: a later night's
    # line for a level (a corrected beneficiary) replaces the earlier one, never adds to it
    "commissions": ("order_id", "level"),
}


class QuietNightError(RuntimeError):
    """Tonight's export is empty or far smaller than usual: refuse to report a quiet night."""


def check_volume(con: duckdb.DuckDBPyConnection, run_date: str, accepted_orders: int,
                 min_ratio: float = 0.2, nights: int = 7) -> None:
    if accepted_orders == 0:
        raise QuietNightError(
            "the export has no valid orders; refusing to publish a night with no fraud"
        )
    if not warehouse.table_exists(con, "ops", "runs"):
        return
    usual = warehouse.scalar(
        con,
        "select median(orders_scored) from (select orders_scored from ops.runs "
        "where run_date < $d order by run_date desc limit $n)",
        {"d": run_date, "n": nights},
    )
    if usual and accepted_orders < min_ratio * usual:
        raise QuietNightError(
            f"the export for {run_date} has {accepted_orders:,} valid orders, far fewer than the "
            f"usual {usual:,.0f} of recent nights; refusing to publish a quiet night "
            "(scan with --allow-small-export if that is real)"
        )


def check_created_volume(con: duckdb.DuckDBPyConnection, run_date: str, min_ratio: float = 0.2,
                         nights: int = 7) -> None:
    """Refuse an export holding far fewer orders created on the night than recent nights
    (after the checks naming a stale export or a mistyped date, which say more)."""
    if not (warehouse.table_exists(con, "ops", "runs")
            and warehouse.table_exists(con, "staging", "orders_history")):
        return
    # A file cut short while still being copied keeps the older orders' updates, which
    # fill the count above, and loses the night's new orders, which come last: 291 of
    # 1,936 passed as a whole night, and the missing orders would never come (the next
    # export brings its own day). The orders created on the night are compared with those
    # created on each recent night scanned.
    created, usual_created = con.execute(
        """
        with recent as (
            select run_date::date as night from ops.runs where run_date < $d
            order by run_date desc limit $n
        ),
        created_on as (
            select created_at::date as night, count(*) as created from staging.orders_history
            where created_at >= (select min(night) from recent) and created_at < $d::date
            group by 1
        )
        select (select count(*) from staging.orders where created_at::date = $d::date),
               median(coalesce(c.created, 0))
        from recent r left join created_on c using (night)
        """,
        {"d": run_date, "n": nights},
    ).fetchall()[0]
    if usual_created and created < min_ratio * usual_created:
        raise QuietNightError(
            f"the export for {run_date} holds {created:,} orders created on {run_date}, far "
            f"fewer than the usual {usual_created:,.0f} created on each of recent nights: a file "
            "cut short while still being copied? Refusing to publish a quiet night (rescan with "
            "the whole export, or scan with --allow-small-export if that is real)"
        )


def check_anything_to_scan(con: duckdb.DuckDBPyConnection, run_date: str | None,
                           accepted_orders: int) -> None:
    """An export with no valid order is scanned (--allow-small-export) only as a named
    night over a history: nothing else names the night or gives the window an order."""
    if accepted_orders:
        return
    if run_date is None:
        raise QuietNightError("the export has no valid orders to name the night by; pass "
                              "--run-date YYYY-MM-DD to scan an empty night")
    if not warehouse.table_exists(con, "staging", "orders_history"):
        raise QuietNightError("the export has no valid orders and the warehouse holds no "
                              "earlier night: there is nothing to scan")


def check_night_not_published_from_another_export(con: duckdb.DuckDBPyConnection, night: str,
                                                  fingerprint: Callable[[], str]) -> None:
    """A night named after the export's latest order (no --run-date) that is already
    published from other files: a cut-off export of the next night, whose last orders are
    yesterday's, would silently replace yesterday's results. A rerun of the same files
    (same fingerprint, computed only then) goes ahead."""
    if not warehouse.table_exists(con, "ops", "runs"):
        return
    published = con.execute("select input_fingerprint from ops.runs where run_date = $night",
                            {"night": night}).fetchall()
    if not published or published[0][0] == fingerprint():
        return
    raise QuietNightError(
        f"the export's latest order was created on {night}, a night already published from "
        f"other files: a cut-off export of a later night? Pass --run-date with the night this "
        f"export is for (--run-date {night} to replace that night's results with it)")


def check_created_on_night(con: duckdb.DuckDBPyConnection, run_date: str, last_created) -> None:
    """Refuse a stale or wrong-day export: published as tonight, the later night winning, it
    would roll orders updated since back to their older state in the history."""
    created = warehouse.scalar(
        con, "select count(*) from staging.orders where created_at::date = $night::date",
        {"night": run_date})
    if not created:
        raise QuietNightError(
            f"the export has no order created on {run_date} (its latest was created "
            f"{last_created}): a stale or wrong-day export? If it is {last_created}'s "
            f"export, --run-date {last_created} rescans that night with it (replacing its "
            f"results); --allow-small-export scans it as {run_date} anyway")


def check_night_not_named_by_strays(con: duckdb.DuckDBPyConnection, night: str,
                                    max_strays: int = 2, gap_days: int = 2) -> None:
    """Refuse a night named (without --run-date) after one or two orders created days after
    every other order of the export: a mistyped date. Published, it would name the night by
    the typo and keep `latest` on that future date while the real nights that follow are
    written behind it."""
    strays = warehouse.query(
        con,
        # the value as written (a partitioned night keeps only keys in raw: then as parsed)
        "select s._file, s._row, coalesce(r.created_at, s.created_at::varchar) as written "
        "from staging.orders s left join raw.orders r on r._row = s._row and r._file = s._file "
        "where s.created_at::date = $night::date order by s._row limit $n",
        {"night": night, "n": max_strays + 1})
    if strays.height > max_strays:
        return
    before = warehouse.scalar(
        con, "select max(created_at) from staging.orders where created_at::date < $night::date",
        {"night": night})
    gap = (date.fromisoformat(night) - before.date()).days if before is not None else 0
    if gap < gap_days:
        return
    where = "; ".join(f"{r['_file']} row {r['_row']}, created_at {r['written']!r}"
                      for r in strays.iter_rows(named=True))
    raise QuietNightError(
        f"the night would be named {night} after {strays.height} order(s) created then ({where}), "
        f"{gap} days after every other order of the "
        f"export (the latest created {before}): a mistyped date? Correct the row and scan again; "
        f"if the night really is {night}, scan with --run-date {night}")


def _columns(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    rows = con.execute(
        "select column_name from information_schema.columns where table_schema = 'staging' "
        "and table_name = $t order by ordinal_position",
        {"t": table},
    ).fetchall()
    return [r[0] for r in rows]


def merge_night(con: duckdb.DuckDBPyConnection, run_date: str) -> dict[str, int]:
    """Upsert tonight's staged rows into staging.<table>_history (later night wins)."""
    con.execute(
        # order_id is unique among accepted orders (validation quarantines repeats)
        "create or replace table ops.tonight_orders as select order_id from staging.orders"
    )
    # intermediate.order_keys is kept across nights: a night merged here has its orders
    # keyed again (features.build_order_keys empties the table once they are), even after
    # a crash between the merge and the features.
    # grain: one row per night merged into the history whose orders are not keyed yet
    con.execute("create table if not exists ops.unkeyed_nights (night varchar primary key)")
    con.execute("insert or ignore into ops.unkeyed_nights values ($night)", {"night": run_date})
    sizes = {}
    for table, keys in HISTORY_KEYS.items():
        if not _adopt_first_night(con, table, run_date):
            _upsert_night(con, table, keys, run_date)
        sizes[table] = int(warehouse.scalar(con, f"select count(*) from staging.{table}_history"))
    return sizes


def _upsert_night(con: duckdb.DuckDBPyConnection, table: str, keys: tuple[str, ...],
                  run_date: str) -> None:
    """Tonight's staged rows replace their keys' history rows, unless a later night's."""
    hist = f"staging.{table}_history"
    cols = _columns(con, table)
    con.execute(
        f"create table if not exists {hist} as "
        f"select *, ''::varchar as _night from staging.{table} limit 0"
    )
    key_match = " and ".join(f"h.{k} is not distinct from t.{k}" for k in keys)
    # drop the history rows tonight replaces, unless they came from a later night
    con.execute(
        f"delete from {hist} h using staging.{table} t where {key_match} and h._night <= $night",
        {"night": run_date},
    )
    col_list = ", ".join(cols)
    con.execute(
        f"insert into {hist} ({col_list}, _night) "
        f"select {col_list}, $night from staging.{table} t "
        f"where not exists (select 1 from {hist} h where {key_match})",
        {"night": run_date},
    )


def _adopt_first_night(con: duckdb.DuckDBPyConnection, table: str, run_date: str) -> bool:
    """On a warehouse's first night a table's history is exactly tonight's staged rows: turn
    the staged table into it in place (add _night, rename) instead of copying every row. For
    orders, staging.orders is a view filtering staging.orders_checked, so the rejected rows
    are deleted and the validation columns dropped first. A copy of 10M orders cost ~33 s;
    this costs under a second. False (nothing done) once the history exists."""
    if warehouse.table_exists(con, "staging", f"{table}_history"):
        return False
    # validate.stage makes staging.orders a view on orders_checked; a partitioned scan loads
    # it as a table
    is_view = warehouse.relation_kind(con, "staging", table) == "view"
    source = f"{table}_checked" if is_view else table
    if is_view and not warehouse.table_exists(con, "staging", source):
        return False
    kept = set(_columns(con, table))  # the staged rows' columns
    dropped = [c for c in _columns(con, source) if c not in kept]
    name = f"staging.{warehouse.ident(source)}"
    con.execute("begin transaction")
    try:
        if source != table:
            con.execute(f"delete from {name} where _reason is not null")
            con.execute(f"drop view staging.{warehouse.ident(table)}")  # use_window remakes it
        for column in dropped:
            con.execute(f"alter table {name} drop column {warehouse.ident(column)}")
        con.execute(f"alter table {name} add column _night varchar")
        con.execute(f"update {name} set _night = $night", {"night": run_date})
        con.execute(f"alter table {name} rename to {warehouse.ident(table)}_history")
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    log.info("first night: staging.%s became staging.%s_history in place", source, table)
    return True


def nights_back(run_date: str, nights: int) -> datetime:
    """Midnight starting the `nights` nights that end with run_date (the lookback window's
    start for lookback_days, the oldest kept moment for keep_days)."""
    night = date.fromisoformat(run_date)
    return datetime.combine(night - timedelta(days=nights - 1), datetime.min.time())


def prune_history(con: duckdb.DuckDBPyConnection, run_date: str, keep_days: int,
                  run_id: str | None = None) -> dict[str, int]:
    """Forget what is older than keep_days nights: orders created before then (and their
    commissions), the scoring inputs, rule hits and quarantined rows of nights before then.
    keep_days >= lookback_days and tonight's own orders stay whatever their age (a late
    refund is scored tonight), so the window, and every result of tonight, is what a
    warehouse that keeps everything gives. Without this the history grows every night and
    so does each night's scan of it. Accounts, products, verdicts, allow-list entries,
    rings and runs are kept: they are small and later nights still refer to them.
    Returns the rows removed per table."""
    kept_from = nights_back(run_date, keep_days)
    first_night = kept_from.date().isoformat()
    # every key every night, tables not there yet count 0: run.json keeps one shape
    removed = dict.fromkeys(("commissions", "orders", "feature_history", "rule_hits", "quarantine"), 0)
    con.execute("begin transaction")
    try:
        if warehouse.table_exists(con, "staging", "orders_history"):
            con.execute(
                "create or replace temp table _forgotten_orders as "
                "select order_id from staging.orders_history where created_at < $start "
                "and order_id not in (select order_id from ops.tonight_orders)",
                {"start": kept_from})
            if warehouse.table_exists(con, "staging", "commissions_history"):
                removed["commissions"] = _deleted(con, (
                    "delete from staging.commissions_history "
                    "where order_id in (select order_id from _forgotten_orders)"))
            removed["orders"] = _deleted(con, (
                "delete from staging.orders_history "
                "where order_id in (select order_id from _forgotten_orders)"))
            con.execute("drop table _forgotten_orders")
        nightly = {"feature_history": "delete from ops.feature_history where run_date < $night",
                   "rule_hits": "delete from ops.rule_hits where run_date < $night"}
        for table, sql in nightly.items():
            if warehouse.table_exists(con, "ops", table):
                removed[table] = _deleted(con, sql, {"night": first_night})
        if warehouse.table_exists(con, "ops", "quarantine") and warehouse.table_exists(
                con, "ops", "runs"):
            removed["quarantine"] = _deleted(con, (
                "delete from ops.quarantine where run_id in "
                "(select run_id from ops.runs where run_date < $night) "
                "and run_id is distinct from $run_id"), {"night": first_night, "run_id": run_id})
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    if any(removed.values()):
        log.info("history before %s forgotten (keep %d nights): %s", first_night, keep_days,
                 ", ".join(f"{n} {t}" for t, n in removed.items() if n))
    return removed


def _deleted(con: duckdb.DuckDBPyConnection, sql: str, params: dict | None = None) -> int:
    return int(con.execute(sql, params or {}).fetchall()[0][0])


def use_window(con: duckdb.DuckDBPyConnection, run_date: str, lookback_days: int) -> dict:
    """Replace staging.<table> with the lookback window of the history: the orders created
    in the last lookback_days nights and tonight's older ones (late updates), which are
    scored against that window. The window never reaches back to a late update's creation:
    refunds and reviews arrive weeks late, and reaching back for them made a 30-night
    window read every night the warehouse holds."""
    start = nights_back(run_date, lookback_days)
    end = datetime.combine(date.fromisoformat(run_date) + timedelta(days=1), datetime.min.time())
    params = {"start": start, "end": end}
    # staging.orders and staging.accounts are views over the history, not copies: at
    # platform scale a copy of every order's full row each night cost more than the
    # features that read it. The window's bounds live in ops.scan_window; tonight's orders
    # from before the window (late updates) are listed in ops.window_extra.
    con.execute(
        "create or replace table ops.scan_window as "
        "select $start::timestamp as window_start, $end::timestamp as window_end", params)
    con.execute(
        "create or replace table ops.window_extra as select order_id from staging.orders_history "
        "where order_id in (select order_id from ops.tonight_orders) "
        "and not (created_at >= $start and created_at < $end)", params)
    warehouse.drop_if(con, "table", "staging", "orders")
    # two scans in a UNION ALL, not one with OR: the OR kept the window's range from
    # filtering the scan, so over a history three times the window each read of the view
    # (~20 a night) took twice as long. window_extra holds only orders outside the range.
    con.execute(
        "create or replace view staging.orders as "
        "select * exclude (_night) from staging.orders_history "
        "where created_at >= (select window_start from ops.scan_window) "
        "and created_at < (select window_end from ops.scan_window) "
        "union all "
        "select * exclude (_night) from staging.orders_history "
        "semi join ops.window_extra using (order_id)"
    )
    # tonight's validated orders now live in the history (staging.orders was a view on them)
    con.execute("drop table if exists staging.orders_checked")
    warehouse.drop_if(con, "table", "staging", "accounts")
    # accounts registered after the night are not yet part of it (a rescan of an earlier
    # night must not find rings among accounts that did not exist then)
    con.execute(
        "create or replace view staging.accounts as select * exclude (_night) "
        "from staging.accounts_history "
        "where registered_at < (select window_end from ops.scan_window)"
    )
    con.execute(
        "create or replace table staging.products as select * exclude (_night) "
        "from staging.products_history"
    )
    con.execute(
        "create or replace table staging.commissions as select * exclude (_night) "
        "from staging.commissions_history where order_id in (select order_id from staging.orders)"
    )
    rows = int(warehouse.scalar(con, "select count(*) from staging.orders"))
    log.info("lookback window %s .. %s: %d orders", start, end, rows)
    return {"window_start": start.isoformat(), "window_end": end.isoformat(), "window_orders": rows}
