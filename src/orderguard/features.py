"""staging -> intermediate: normalised identifiers, then the feature SQL models in order."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict
from datetime import datetime

import duckdb
import polars as pl

from orderguard import normalize, warehouse
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


def _distinct(con: duckdb.DuckDBPyConnection, sql: str) -> pl.Series:
    return warehouse.query(con, sql).to_series(0)


def build_normalised_lookups(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Normalise each distinct address, phone and IP once (never once per order)."""
    addresses = _distinct(
        con, "select distinct address from staging.orders where address is not null order by 1"
    )
    addr = normalize.normalize_addresses(addresses).with_columns(addresses.alias("address"))
    warehouse.write_frame(con, "intermediate", "norm_address", addr)

    phones = _distinct(
        con,
        "select distinct p from (select receiver_phone as p from staging.orders union all "
        "select phone from staging.accounts) where p is not null order by 1",
    )
    ph = normalize.normalize_phones(phones).with_columns(phones.alias("phone_raw"))
    warehouse.write_frame(con, "intermediate", "norm_phone", ph)

    ips = _distinct(
        con,
        "select distinct i from (select ip as i from staging.orders union all "
        "select ip from staging.accounts) where i is not null order by 1",
    )
    ip = normalize.normalize_ips(ips).with_columns(ips.alias("ip_raw"))
    warehouse.write_frame(con, "intermediate", "norm_ip", ip)
    return {"addresses": addr.height, "phones": ph.height, "ips": ip.height}


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
