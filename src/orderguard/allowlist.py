"""Allow-lists and snoozes: entities support has cleared stop raising alerts until expiry.

An entry names an account, a device, an address key (strict or building) or a shop, with a
reason and an expiry. Matching orders keep their score (the evidence is still there) but
drop to risk level low and carry `suppressed_by`; the report lists what was suppressed.
"""

from __future__ import annotations

from datetime import datetime

import duckdb
import polars as pl

from orderguard import warehouse

ENTITY_TYPES = ("account", "device", "address", "shop")


class AllowListError(ValueError):
    pass


def ensure_table(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        """create table if not exists ops.allowlist (
            entity_type varchar, entity_value varchar, reason varchar, expires_at timestamp,
            added_by varchar, added_at timestamp)"""
    )


def add(con: duckdb.DuckDBPyConnection, entity_type: str, value: str, reason: str,
        expires_at: datetime, added_by: str = "support") -> None:
    if entity_type not in ENTITY_TYPES:
        raise AllowListError(f"entity type must be one of {ENTITY_TYPES}, not {entity_type!r}")
    if not value or not value.strip():
        raise AllowListError("an allow-list entry needs a value")
    if not reason or not reason.strip():
        raise AllowListError("say why the entity is cleared (--reason)")
    ensure_table(con)
    value = value.strip() if entity_type in ("account", "shop", "address") else value.strip().lower()
    con.execute(
        "delete from ops.allowlist where entity_type = $t and entity_value = $v",
        {"t": entity_type, "v": value},
    )
    con.execute(
        "insert into ops.allowlist values ($t, $v, $r, $e, $b, $a)",
        {"t": entity_type, "v": value, "r": reason.strip(), "e": expires_at, "b": added_by,
         "a": datetime.now().replace(microsecond=0)},
    )


_SEEN = {  # where an account or shop id the warehouse has scanned is kept
    "account": ("accounts_history", "select count(*) from staging.accounts_history where account_id = $v"),
    "shop": ("orders_history", "select count(*) from staging.orders_history where shop_id = $v"),
}


def unseen(con: duckdb.DuckDBPyConnection, entity_type: str, value: str) -> bool:
    """True when an account or shop id is nowhere in the scanned history (likely a typo).
    Devices and addresses are matched normalised, so they are not checked."""
    if entity_type not in _SEEN or not warehouse.table_exists(con, "staging", _SEEN[entity_type][0]):
        return False
    return not warehouse.scalar(con, _SEEN[entity_type][1], {"v": value.strip()})


def active(con: duckdb.DuckDBPyConnection, as_of: datetime) -> pl.DataFrame:
    """grain: one row per (entity_type, entity_value) still in force at as_of."""
    if not warehouse.table_exists(con, "ops", "allowlist"):
        return pl.DataFrame(schema={"entity_type": pl.String, "entity_value": pl.String,
                                    "reason": pl.String, "expires_at": pl.Datetime})
    return warehouse.query(
        con,
        "select entity_type, entity_value, reason, expires_at from ops.allowlist "
        "where expires_at > $as_of order by entity_type, entity_value",
        {"as_of": as_of},
    )


def suppressed_orders(con: duckdb.DuckDBPyConnection, as_of: datetime) -> pl.DataFrame:
    """grain: one row per order_id matched by an active entry (first match by entity type)."""
    entries = active(con, as_of)
    if entries.is_empty():
        return pl.DataFrame(schema={"order_id": pl.String, "suppressed_by": pl.String})
    con.register("allowlist_entries", entries.to_arrow())
    try:
        return warehouse.query(
            con,
            """
        with entries as (select * from allowlist_entries),
        keys as (
            select order_id, 'account' as entity_type, buyer_id as entity_value from intermediate.order_keys
            union all select order_id, 'device', device_key from intermediate.order_keys
            union all select order_id, 'address', address_strict_key from intermediate.order_keys
            union all select order_id, 'address', address_building_key from intermediate.order_keys
            union all select order_id, 'shop', shop_id from intermediate.order_keys
        ),
        matched as (
            select k.order_id,
                   min(e.entity_type || ':' || e.entity_value || ' (' || e.reason || ', until '
                       || strftime(e.expires_at, '%Y-%m-%d') || ')') as suppressed_by
            from keys k join entries e using (entity_type, entity_value)
            group by 1
        )
        select * from matched order by order_id
        """,
        )
    finally:
        con.unregister("allowlist_entries")


def report_section(con: duckdb.DuckDBPyConnection) -> str:
    """HTML fragment: tonight's orders an allow-list entry kept from alerting, by entry."""
    from orderguard import report  # the report imports matplotlib; only needed here

    rows = warehouse.query(
        con,
        "select suppressed_by as entry, count(*) as orders, round(max(score), 4) as max_score "
        "from marts.order_scores where suppressed_by is not null group by 1 order by 2 desc, 1",
    )
    if rows.is_empty():
        return "<section><h2>已豁免 / Suppressed by allow-list</h2><p>None tonight.</p></section>"
    return ("<section><h2>已豁免 / Suppressed by allow-list</h2>"
            f"<p>{int(rows['orders'].sum())} orders matched an allow-list entry and raised no alert.</p>"
            f"{report._table(rows)}</section>")
