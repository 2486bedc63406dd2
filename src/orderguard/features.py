"""staging -> intermediate: normalised identifiers, then the feature SQL models in order."""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import asdict
from datetime import datetime
from pathlib import Path

import duckdb
import polars as pl

from orderguard import address, normalize, warehouse
from orderguard.graphs import GraphSettings

log = logging.getLogger(__name__)

# Build order matters: each model reads the ones above it.
INTERMEDIATE_MODELS = (
    "order_keys",
    "account_identifiers",
    "identifier_stats",
    "account_pairs",
    "tracking_checks",
    "waybill_flags",
    "behaviour_cohorts",
    "product_bursts",
    "referral_checks",
    "referral_tree",
    "account_features",
    "group_product_scan",
    "order_features",
)
# A model read exactly once, inside this stage, stays a view: writing its millions of rows
# costs more than running its query inside the one reader (tracking_checks: waybill_flags).
# order_features is read once too, but by the scorer's stream, which then waits on the
# view's joins batch by batch: measured at 10M orders, the time only moved to scoring.
VIEW_MODELS = ("tracking_checks",)
# Tables earlier versions built and nothing builds now: dropped, so an analyst reading an
# older warehouse never finds a stale copy (order_timing's columns are in order_keys).
RETIRED_MODELS = ("order_timing", "scoring_inputs")


# Each lookup: one row per distinct raw value in the window, keyed by its raw text.
# (count label, table, raw-value column, the window's distinct values, normaliser)
LOOKUPS = (
    ("addresses", "norm_address", "address",
     "select distinct address as raw_value from staging.orders where address is not null",
     normalize.normalize_addresses),
    ("phones", "norm_phone", "phone_raw",
     "select distinct p as raw_value from (select receiver_phone as p from staging.orders "
     "union all select phone from staging.accounts) where p is not null",
     normalize.normalize_phones),
    ("ips", "norm_ip", "ip_raw",
     "select distinct i as raw_value from (select ip as i from staging.orders "
     "union all select ip from staging.accounts) where i is not null",
     normalize.normalize_ips),
)


def _create_fingerprints_table(con: duckdb.DuckDBPyConnection) -> None:
    # grain: one row per table kept across nights (the three lookups, order_keys), the
    # fingerprint of the code its rows were made under
    con.execute("create table if not exists ops.lookup_fingerprints "
                "(table_name varchar primary key, fingerprint varchar not null)")


def _stored_fingerprint(con: duckdb.DuckDBPyConnection, table: str) -> str | None:
    return warehouse.scalar(con, "select fingerprint from ops.lookup_fingerprints "
                            "where table_name = $t", {"t": table})


def _store_fingerprint(con: duckdb.DuckDBPyConnection, table: str, fingerprint: str) -> None:
    con.execute("insert or replace into ops.lookup_fingerprints values ($t, $fingerprint)",
                {"t": table, "fingerprint": fingerprint})


def normaliser_fingerprint() -> str:
    """What the lookups' rows depend on besides the raw text: the normalising code, the
    region table and Polars (its regex engine). A lookup built under another fingerprint
    is rebuilt whole, never patched."""
    digest = hashlib.sha256(pl.__version__.encode())
    for source in (address.__file__, normalize.__file__, address._adcodes_path()):
        digest.update(Path(source).read_bytes())
    return digest.hexdigest()[:16]


def refresh_lookup(con: duckdb.DuckDBPyConnection, table: str, raw_column: str, values_sql: str,
                   normaliser, fingerprint: str) -> tuple[int, int]:
    """Bring intermediate.<table> to the window's distinct raw values, normalising only the
    values last night's table lacks (the window moves by a day: nearly every value is known).
    Returns (rows, values normalised tonight). Called by build_normalised_lookups, which
    creates ops.lookup_fingerprints first."""
    name, key = warehouse.ident(table), warehouse.ident(raw_column)
    con.execute(f"create or replace temp table _window_values as {values_sql}")
    try:
        kept = (warehouse.relation_kind(con, "intermediate", table) == "table"
                and _stored_fingerprint(con, table) == fingerprint)
        if kept:  # values that left the window go, new ones are normalised and added
            con.execute(f"delete from intermediate.{name} where {key} not in "
                        "(select raw_value from _window_values)")
            new = warehouse.query(con, "select raw_value from _window_values anti join "
                                  f"intermediate.{name} on {key} = raw_value order by 1")
        else:
            new = warehouse.query(con, "select raw_value from _window_values order by 1")
    finally:
        con.execute("drop table if exists _window_values")
    values = new.to_series(0)
    normalised = normaliser(values).with_columns(values.alias(raw_column))
    if kept:
        warehouse.append_frame(con, "intermediate", table, normalised)
    else:
        warehouse.write_frame(con, "intermediate", table, normalised)
        _store_fingerprint(con, table, fingerprint)
    rows = warehouse.scalar(con, f"select count(*) from intermediate.{name}")
    return int(rows), values.len()


def build_normalised_lookups(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Normalise each distinct address, phone and IP once (never once per order), and each
    only on the first night it appears in the window."""
    fingerprint = normaliser_fingerprint()
    _create_fingerprints_table(con)
    counts = {}
    for label, table, raw_column, values_sql, normaliser in LOOKUPS:
        counts[label], counts[f"{label}_normalised"] = refresh_lookup(
            con, table, raw_column, values_sql, normaliser, fingerprint)
        log.info("intermediate.%s: %d rows, %d normalised tonight", table, counts[label],
                 counts[f"{label}_normalised"])
    return counts


# Window orders whose kept order_keys row is missing or may be stale: orders merged on a
# night not keyed yet, orders the kept table lacks (the window reached back), and orders
# whose product (price, cost, virtual) or buyer (registration time) changed since keying,
# found by comparing the values the kept row was made from with today's rows.
ORDERS_TO_KEY_SQL = """
select order_id from staging.orders_history
where _night in (select night from ops.unkeyed_nights)
union
select order_id from staging.orders anti join intermediate.order_keys using (order_id)
union
select k.order_id from intermediate.order_keys k
left join staging.products p using (product_id)
left join staging.accounts a on a.account_id = k.buyer_id
where k.list_price is distinct from p.price
   or k.unit_cost is distinct from p.cost
   or k.is_virtual is distinct from coalesce(p.is_virtual, false)
   or k.account_age_s is distinct from date_diff('second', a.registered_at, k.created_at)
"""


def order_keys_fingerprint() -> str:
    """What a kept order_keys row depends on besides its input rows: the model's SQL, the
    og_token macro and the lookups' normalisers."""
    digest = hashlib.sha256(warehouse.sql_text("intermediate", "order_keys").encode())
    digest.update(warehouse.OG_TOKEN_MACRO.encode())
    digest.update(normaliser_fingerprint().encode())
    return digest.hexdigest()[:16]


def _order_keys_keepable(con: duckdb.DuckDBPyConnection, fingerprint: str) -> bool:
    """Last night's order_keys can be brought up to date: it was made by this code, and the
    window is the view over the history whose merged nights ops.unkeyed_nights lists."""
    return (warehouse.relation_kind(con, "intermediate", "order_keys") == "table"
            and warehouse.relation_kind(con, "staging", "orders") == "view"
            and warehouse.table_exists(con, "staging", "orders_history")
            and warehouse.table_exists(con, "ops", "unkeyed_nights")
            and _stored_fingerprint(con, "order_keys") == fingerprint)


def build_order_keys(con: duckdb.DuckDBPyConnection, params: dict) -> tuple[int, int]:
    """Bring intermediate.order_keys to the window, keying only the orders new or changed
    since last night's table (a usual night: the night's export, a tenth of the window).
    Returns (rows, orders keyed tonight). A row is a function of its inputs alone, so a kept
    row is what a whole rebuild writes; any change of code rebuilds the table whole."""
    fingerprint = order_keys_fingerprint()
    sql = warehouse.sql_text("intermediate", "order_keys")
    _create_fingerprints_table(con)
    if _order_keys_keepable(con, fingerprint):
        con.execute(f"create or replace temp table _orders_to_key as {ORDERS_TO_KEY_SQL}")
        # each step leaves a state the next night repairs: a deleted row not yet keyed again
        # is missing, and unkeyed_nights is emptied last
        con.execute("delete from intermediate.order_keys where order_id in "
                    "(select order_id from _orders_to_key) "
                    "or order_id not in (select order_id from staging.orders)")
        con.execute("create or replace temp view order_keys_input as "
                    "select * from staging.orders semi join _orders_to_key using (order_id)")
        keyed = con.execute(f"insert into intermediate.order_keys\n{sql}",
                            warehouse.bind(sql, params)).fetchall()[0][0]
        con.execute("drop table _orders_to_key")
    else:
        con.execute("create or replace temp view order_keys_input as select * from staging.orders")
        keyed = warehouse.build_model(con, "intermediate", "order_keys", params)
        _store_fingerprint(con, "order_keys", fingerprint)
    con.execute("drop view order_keys_input")
    if warehouse.table_exists(con, "ops", "unkeyed_nights"):
        con.execute("delete from ops.unkeyed_nights")
    rows = warehouse.scalar(con, "select count(*) from intermediate.order_keys")
    return int(rows), int(keyed)


def feature_params(con: duckdb.DuckDBPyConnection, settings: GraphSettings,
                   as_of: datetime | None = None) -> dict:
    if as_of is None:
        as_of = warehouse.scalar(con, "select max(created_at) from staging.orders")
    return {
        **asdict(settings),
        "as_of": as_of,
        "lockstep_minutes": 10,
        "instant_order_seconds": 60,  # "ordered at once": within a minute of registering
        "rare_shape_share": 0.005,
        "min_carrier_orders": 200,
        # a shape only one of a carrier's shops writes is malformed (a carrier serving this
        # many shops at least), unless it holds this share of the carrier's orders or more
        "min_carrier_shops": 5,
        "one_shop_shape_share": 0.1,
        "undelivered_days": 10,
        # a domestic parcel takes 2-4 days: a week without delivery before the buyer was
        # refunded is a parcel that never came (the refund ends the wait, so the ten days
        # above would never be reached)
        "undelivered_refund_days": 7,
        # a bulk order: this many units at least, and this many times the product's usual
        # quantity per order (a flood of orders for dozens of units each, 恶意下单)
        "bulk_min_quantity": 10,
        "bulk_quantity_ratio": 5,
        # behaviour cohorts (a 刷手 network sharing no identifier): a 5-star review this soon
        # after delivery marks an order; a second give-away must come with it: payment this
        # soon after ordering, a parcel delivered this soon after shipping, or an account
        # registered this close to another such buyer's and this long before ordering
        "instant_review_minutes": 15,
        "fast_pay_seconds": 15,
        "fast_delivery_hours": 4,
        "batch_registration_minutes": 10,
        "batch_lead_hours": 1,
        "cohort_gap_hours": 24,  # a quiet day ends a cohort
    }


def build_intermediate(con: duckdb.DuckDBPyConnection, settings: GraphSettings,
                       as_of: datetime | None = None) -> dict[str, int]:
    for name in RETIRED_MODELS:
        warehouse.drop_if(con, "table", "intermediate", name)
    counts = build_normalised_lookups(con)
    params = feature_params(con, settings, as_of)
    for name in INTERMEDIATE_MODELS:
        started = time.perf_counter()
        if name == "order_keys":
            counts[name], counts["orders_keyed"] = build_order_keys(con, params)
            log.info("intermediate.order_keys: %d rows, %d keyed tonight, in %.1f s",
                     counts[name], counts["orders_keyed"], time.perf_counter() - started)
            continue
        if name in VIEW_MODELS:
            warehouse.build_model(con, "intermediate", name, as_view=True, count_rows=False)
            log.info("intermediate.%s: view", name)
            continue
        counts[name] = warehouse.build_model(con, "intermediate", name, params)
        log.info("intermediate.%s: %d rows in %.1f s", name, counts[name],
                 time.perf_counter() - started)
    return counts
