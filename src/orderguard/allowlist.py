"""Allow-lists and snoozes: entities support has cleared stop raising alerts until expiry.

An entry names an account, a device, an address (one flat or one building, given as the
receiver address of an order or as its key) or a shop, with a reason and an expiry.
Matching orders keep their score (the evidence is still there) but drop to risk level low
and carry `suppressed_by`; the report lists what was suppressed.
"""

from __future__ import annotations

import logging
from datetime import datetime

import duckdb
import polars as pl

from orderguard import config, warehouse

log = logging.getLogger(__name__)

ENTITY_TYPES = ("account", "device", "address", "shop")


class AllowListError(ValueError):
    pass


def ensure_table(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        """create table if not exists ops.allowlist (
            entity_type varchar, entity_value varchar, reason varchar, expires_at timestamp,
            added_by varchar, added_at timestamp)"""
    )


def address_key(text: str) -> str:
    """The key an address entry matches: the flat's (strict) key when the text names a room,
    else the building's. Text already in key form ('城市|区|小区|B3') is kept. Support copies
    the receiver address from the order, in whatever wording; the scan matches orders on the
    normalised keys, so the entry is normalised the same way."""
    from orderguard.address import normalize_addresses  # the regions table loads on first use

    text = text.strip()
    if "|" in text:
        return text
    keys = normalize_addresses(pl.Series([text])).row(0, named=True)
    key = keys["address_strict_key"] or keys["address_building_key"]
    if not key:
        raise AllowListError(
            f"{text!r} names no building: an address entry clears one flat or one building, "
            "never a whole compound. Give the receiver address as on the order, with its "
            "building (and room), e.g. 杭州市西湖区文三路138号阳光花园3幢2单元1202室")
    return key


def key_older_address_entries(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
    """Address entries stored as written (by versions that matched the text, which the scan
    no longer does) are turned into the key add() stores, so they keep clearing their flat.
    Returns (old value, key) per entry changed; one naming no building is left and logged."""
    written = [r[0] for r in con.execute(
        "select entity_value from ops.allowlist where entity_type = 'address' "
        "and not contains(entity_value, '|') order by 1").fetchall()]
    changed = []
    for text in written:
        try:
            key = address_key(text)
        except AllowListError as exc:
            log.warning("allow-list address entry %r matches no order: %s", text, exc)
            continue
        # a keyed entry for the same flat already there wins: it is the newer
        con.execute("update ops.allowlist set entity_value = $k where entity_type = 'address' "
                    "and entity_value = $t and not exists (select 1 from ops.allowlist where "
                    "entity_type = 'address' and entity_value = $k)", {"k": key, "t": text})
        con.execute("delete from ops.allowlist where entity_type = 'address' and entity_value = $t",
                    {"t": text})
        log.info("allow-list address entry %r now matches its key %s", text, key)
        changed.append((text, key))
    return changed


def add(con: duckdb.DuckDBPyConnection, entity_type: str, value: str, reason: str,
        expires_at: datetime, added_by: str = "support") -> str:
    """Store an entry (replacing one for the same entity); returns the value it matches on."""
    if entity_type not in ENTITY_TYPES:
        raise AllowListError(f"entity type must be one of {ENTITY_TYPES}, not {entity_type!r}")
    if not value or not value.strip():
        raise AllowListError("an allow-list entry needs a value")
    if not reason or not reason.strip():
        raise AllowListError("say why the entity is cleared (--reason)")
    if entity_type == "address":
        value = address_key(value)
    else:
        value = value.strip() if entity_type in ("account", "shop") else value.strip().lower()
    ensure_table(con)
    con.execute(
        "delete from ops.allowlist where entity_type = $t and entity_value = $v",
        {"t": entity_type, "v": value},
    )
    con.execute(
        "insert into ops.allowlist values ($t, $v, $r, $e, $b, $a)",
        {"t": entity_type, "v": value, "r": reason.strip(), "e": expires_at, "b": added_by,
         "a": config.local_now()},
    )
    return value


_SEEN = {  # where the warehouse keeps what it has scanned of each kind of entity
    "account": ("staging", "accounts_history",
                "select count(*) from staging.accounts_history where account_id = $v"),
    "shop": ("staging", "orders_history", "select count(*) from staging.orders_history where shop_id = $v"),
    # devices and addresses as the scan matches them (normalised), over the last window
    "device": ("intermediate", "order_keys",
               "select count(*) from intermediate.order_keys where device_key = $v"),
    "address": ("intermediate", "order_keys",
                "select count(*) from intermediate.order_keys "
                "where address_strict_key = $v or address_building_key = $v"),
}


def unseen(con: duckdb.DuckDBPyConnection, entity_type: str, value: str) -> bool:
    """True when the warehouse has no order or account with this stored value (likely a typo,
    or an address worded beyond what the normaliser reads). `value` is what add returned."""
    if entity_type not in _SEEN or not warehouse.table_exists(con, *_SEEN[entity_type][:2]):
        return False
    return not warehouse.scalar(con, _SEEN[entity_type][2], {"v": value})


def active(con: duckdb.DuckDBPyConnection, as_of: datetime) -> pl.DataFrame:
    """grain: one row per (entity_type, entity_value) still in force at as_of."""
    if not warehouse.table_exists(con, "ops", "allowlist"):
        return pl.DataFrame(schema={"entity_type": pl.String, "entity_value": pl.String,
                                    "reason": pl.String, "expires_at": pl.Datetime,
                                    "added_by": pl.String, "added_at": pl.Datetime})
    # who cleared it and when last, so a reviewer can ask them
    return warehouse.query(
        con,
        "select entity_type, entity_value, reason, expires_at, added_by, added_at from ops.allowlist "
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
