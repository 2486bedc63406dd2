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
                and warehouse.scalar(con, "select fingerprint from ops.lookup_fingerprints "
                                     "where table_name = $t", {"t": table}) == fingerprint)
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
        con.execute("insert or replace into ops.lookup_fingerprints values ($t, $fingerprint)",
                    {"t": table, "fingerprint": fingerprint})
    rows = warehouse.scalar(con, f"select count(*) from intermediate.{name}")
    return int(rows), values.len()


def build_normalised_lookups(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Normalise each distinct address, phone and IP once (never once per order), and each
    only on the first night it appears in the window."""
    fingerprint = normaliser_fingerprint()
    # grain: one row per lookup table, the fingerprint its rows were normalised under
    con.execute("create table if not exists ops.lookup_fingerprints "
                "(table_name varchar primary key, fingerprint varchar not null)")
    counts = {}
    for label, table, raw_column, values_sql, normaliser in LOOKUPS:
        counts[label], counts[f"{label}_normalised"] = refresh_lookup(
            con, table, raw_column, values_sql, normaliser, fingerprint)
        log.info("intermediate.%s: %d rows, %d normalised tonight", table, counts[label],
                 counts[f"{label}_normalised"])
    return counts


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
        "undelivered_days": 10,
    }


def build_intermediate(con: duckdb.DuckDBPyConnection, settings: GraphSettings,
                       as_of: datetime | None = None) -> dict[str, int]:
    for name in RETIRED_MODELS:
        warehouse.drop_if(con, "table", "intermediate", name)
    counts = build_normalised_lookups(con)
    params = feature_params(con, settings, as_of)
    for name in INTERMEDIATE_MODELS:
        started = time.perf_counter()
        if name in VIEW_MODELS:
            warehouse.build_model(con, "intermediate", name, as_view=True, count_rows=False)
            log.info("intermediate.%s: view", name)
            continue
        counts[name] = warehouse.build_model(con, "intermediate", name, params)
        log.info("intermediate.%s: %d rows in %.1f s", name, counts[name],
                 time.perf_counter() - started)
    return counts
