"""Ring ids that follow a ring from night to night.

graphs.ring_id_for names a ring by a hash of its members, so one account joining or leaving
would rename it and support would lose track of it. Tonight's ring therefore inherits the id
of a ring published on an earlier night when both are of the same kind and their members
overlap by Jaccard >= 0.5; otherwise it keeps its new deterministic id.

Earlier rings come from ops.ring_history (one row per night and ring, written when a night
is published, see record_night); a warehouse that has none yet falls back to marts.rings,
the last published night. Matching is a pure function of tonight's rings and that history,
one-to-one, best overlap first, ties broken by the most recent night and then by id, so a
rerun of the same input reproduces the same ids byte for byte.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import duckdb
import polars as pl

from orderguard import graphs, warehouse

log = logging.getLogger(__name__)

MIN_JACCARD = 0.5

HISTORY_DDL = """create table if not exists ops.ring_history (
    run_date varchar, ring_id varchar, kind varchar, size bigint, members varchar,
    order_count bigint, gmv decimal(38, 2), commission_at_stake decimal(38, 2),
    evidence varchar, run_id varchar, evidence_zh varchar)"""
# a history made before rings carried Chinese evidence gains the column; its old nights keep null
HISTORY_MIGRATION = "alter table ops.ring_history add column if not exists evidence_zh varchar"


@dataclass(frozen=True)
class KnownRing:
    ring_id: str
    kind: str
    members: frozenset[str]
    last_seen: str  # run_date of the latest night it was published ("" when unknown)


def known_rings(con: duckdb.DuckDBPyConnection, night: str) -> list[KnownRing]:
    """Every ring id published before `night`, with the members it had on the latest such
    night (a rescanned earlier night continues the rings of the nights before it, not of
    later nights, whose members have drifted)."""
    if warehouse.table_exists(con, "ops", "ring_history"):
        frame = warehouse.query(
            con,
            "select ring_id, arg_max(kind, run_date) as kind, arg_max(members, run_date) as members, "
            "max(run_date) as last_seen from ops.ring_history where run_date < $night "
            "group by 1 order by 1", {"night": night},
        )
    elif warehouse.table_exists(con, "marts", "rings"):
        frame = warehouse.query(
            con, "select ring_id, kind, members, '' as last_seen from marts.rings order by 1"
        )
    else:
        return []
    return [
        KnownRing(r["ring_id"], r["kind"], frozenset(filter(None, (r["members"] or "").split(";"))),
                  r["last_seen"] or "")
        for r in frame.iter_rows(named=True)
    ]


def match_ids(
    tonight: Sequence[tuple[str, str, Iterable[str]]], known: Sequence[KnownRing],
    min_jaccard: float = MIN_JACCARD,
) -> dict[str, str]:
    """tonight: (new_id, kind, members) per ring. Returns new_id -> id to publish under.

    One-to-one: each earlier id is given to at most one ring tonight, best overlap first."""
    # inverted index (kind, member) -> earlier rings, so only rings sharing a member are compared
    index: dict[tuple[str, str], list[int]] = {}
    for i, k in enumerate(known):
        for m in k.members:
            index.setdefault((k.kind, m), []).append(i)
    candidates = []
    for new_id, kind, members in tonight:
        members = set(members)
        shared: dict[int, int] = {}
        for m in members:
            for i in index.get((kind, m), ()):
                shared[i] = shared.get(i, 0) + 1
        for i, inter in shared.items():
            k = known[i]
            score = inter / (len(members) + len(k.members) - inter)
            if score >= min_jaccard:
                # sort key: best overlap, then the most recent night, then the ids
                candidates.append((-score, _desc(k.last_seen), k.ring_id, new_id))
    chosen: dict[str, str] = {}
    taken: set[str] = set()
    for _, _, old_id, new_id in sorted(candidates):
        if new_id in chosen or old_id in taken:
            continue
        chosen[new_id] = old_id
        taken.add(old_id)
    result = {}
    for new_id, _, _ in tonight:
        if new_id in chosen:
            result[new_id] = chosen[new_id]
        elif new_id in taken:
            # tonight's hash id was handed to another ring that continues an earlier one
            result[new_id] = f"{new_id}-2"
        else:
            result[new_id] = new_id
    return result


def _desc(text: str) -> tuple[int, ...]:
    return tuple(-ord(c) for c in text)


def stabilise(con: duckdb.DuckDBPyConnection, rings: list[graphs.Ring], night: str) -> list[graphs.Ring]:
    """Give tonight's rings the ids of the earlier nights' rings they continue (in place)."""
    known = known_rings(con, night)
    if not known or not rings:
        return rings
    mapping = match_ids([(r.ring_id, r.kind, r.members) for r in rings], known)
    carried = 0
    for ring in rings:
        new = mapping[ring.ring_id]
        carried += new != ring.ring_id
        ring.ring_id = new
    log.info("ring ids: %d of %d rings carry an earlier night's id", carried, len(rings))
    return rings


def record_night(con: duckdb.DuckDBPyConnection, run_date: str, run_id: str) -> None:
    """Append tonight's published rings (marts.rings) to ops.ring_history; a rerun of a night
    replaces that night's rows."""
    con.execute(HISTORY_DDL)
    con.execute(HISTORY_MIGRATION)
    con.execute("delete from ops.ring_history where run_date = $d", {"d": run_date})
    con.execute(
        "insert into ops.ring_history by name select $d as run_date, ring_id, kind, size, members, "
        "order_count, gmv, commission_at_stake, evidence, $run_id as run_id, evidence_zh "
        "from marts.rings order by ring_id",
        {"d": run_date, "run_id": run_id},
    )


def changes(con: duckdb.DuckDBPyConnection, run_date: str) -> dict[str, pl.DataFrame | str | None]:
    """Tonight against the latest earlier night in ops.ring_history: rings first seen
    tonight (new), rings back after nights away (returned: not last night, seen before),
    rings gone since (with `now_in`, tonight's ring holding most of their members when they
    merged into one), rings carried over (with their first night and size change)."""
    if not warehouse.table_exists(con, "ops", "ring_history"):
        empty = pl.DataFrame(schema={"ring_id": pl.String, "kind": pl.String, "size": pl.Int64})
        return {"previous": None, "new": empty, "returned": empty, "gone": empty, "carried": empty,
                "tonight": empty}
    previous = warehouse.scalar(
        con, "select max(run_date) from ops.ring_history where run_date < $d", {"d": run_date}
    )
    params = {"d": run_date, "p": previous or ""}
    tonight = warehouse.query(
        con,
        "select h.ring_id, h.kind, h.size, h.order_count, h.gmv, h.commission_at_stake, f.first_seen, "
        "h.members from ops.ring_history h join (select ring_id, min(run_date) as first_seen "
        "from ops.ring_history group by 1) f using (ring_id) where h.run_date = $d",
        params,
    )
    before = warehouse.query(
        con,
        "select ring_id, kind, size, order_count, gmv, members from ops.ring_history where run_date = $p",
        params,
    )
    absent = tonight.join(before.select("ring_id"), on="ring_id", how="anti").sort(["kind", "ring_id"])
    new = absent.filter(pl.col("first_seen") == run_date).drop("members")
    returned = absent.filter(pl.col("first_seen") < run_date).drop("members")
    gone = before.join(tonight.select("ring_id"), on="ring_id", how="anti").sort(["kind", "ring_id"])
    gone = gone.join(_merged_into(gone, tonight), on="ring_id", how="left").drop("members")
    tonight, before = tonight.drop("members"), before.drop("members")
    kept = (
        tonight.join(before.select("ring_id", pl.col("size").alias("size_before")), on="ring_id")
        .with_columns((pl.col("size") - pl.col("size_before")).alias("size_change"))
        .sort(["kind", "ring_id"])
    )
    return {"previous": previous, "new": new, "returned": returned, "gone": gone, "carried": kept,
            "tonight": tonight}


def _merged_into(gone: pl.DataFrame, tonight: pl.DataFrame) -> pl.DataFrame:
    """grain: one row per gone ring at least half of whose members are in one ring tonight:
    ring_id, now_in (that ring; the one holding most of them, the smaller id on a tie)."""
    def members(frame: pl.DataFrame, id_col: str) -> pl.DataFrame:
        return frame.select(pl.col("ring_id").alias(id_col),
                            pl.col("members").str.split(";").alias("account_id")).explode("account_id")

    if gone.is_empty() or tonight.is_empty():
        return pl.DataFrame(schema={"ring_id": pl.String, "now_in": pl.String})
    old = members(gone, "ring_id")
    sizes = old.group_by("ring_id").len("size")
    return (
        old.join(members(tonight, "now_in"), on="account_id")
        .group_by("ring_id", "now_in").len("shared")
        .join(sizes, on="ring_id")
        .filter(pl.col("shared") * 2 >= pl.col("size"))
        .sort(["ring_id", "shared", "now_in"], descending=[False, True, False])
        .unique("ring_id", keep="first", maintain_order=True)
        .select("ring_id", "now_in")
    )
