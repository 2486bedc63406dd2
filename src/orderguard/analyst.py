"""Helpers the analyst notebooks (notebooks/) call, so the notebooks hold no logic.

Every helper opens the warehouse READ-ONLY for the length of one call and closes it before
returning: an open notebook never holds the DuckDB file, so it never blocks the nightly
scan (while a scan is writing, a helper raises warehouse.WarehouseBusyError; run it again
when the scan is done). Each DataFrame-returning helper states its grain.

    tonight(db)                      flagged orders, rings, money at stake, previous nights
    ring_orders / ring_drawing       one ring's orders; its accounts and shared identifiers
    truth(db, labels)                order labels: support's verdicts, else a labels folder
    budget_curve / threshold_curve   precision and recall against the review budget
    precision_recall_figure          either curve drawn
    rule_hits(db, labels)            per reason code: hits and precision
    what_if(db, flag_threshold)      what a changed flag threshold would flag
    investigate(db, account_id=..., device=..., address_key=..., shop_id=...)
    example_account(db)              an account worth a look (a ring owner)
    scorecard / grade_counts / programme / cohorts   the distribution-health marts
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import networkx as nx
import polars as pl
from matplotlib.figure import Figure

from orderguard import charts, config, feedback, graphs, health, warehouse
from orderguard.rules import load_rules

log = logging.getLogger(__name__)

DB_ENV = "ORDERGUARD_DB"
LABELS_ENV = "ORDERGUARD_LABELS"
DEFAULT_BUDGETS = (25, 50, 100, 200, 300, 500, 1000)


# ----------------------------------------------------------------------------- plumbing


def warehouse_path() -> Path:
    """The warehouse a notebook reads: $ORDERGUARD_DB, else data/warehouse.duckdb (the one
    `make demo` leaves)."""
    return Path(os.environ.get(DB_ENV) or config.default_db_path())


def labels_path() -> Path | None:
    """Generated labels for the demo: $ORDERGUARD_LABELS, else data/demo/labels when it
    exists and the notebook reads the demo's warehouse, else None (real data has verdicts
    instead: the demo's labels name none of another warehouse's orders)."""
    env = os.environ.get(LABELS_ENV)
    if env:
        return Path(env)
    if warehouse_path().resolve() != config.default_db_path().resolve():
        return None
    demo = config.data_dir() / "demo" / "labels"
    return demo if demo.is_dir() else None


@contextmanager
def reading(db: str | Path | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection for one helper call, always closed afterwards."""
    con = warehouse.connect(Path(db) if db else warehouse_path(), read_only=True)
    try:
        yield con
    finally:
        con.close()


def read(db: str | Path | None, sql: str, params: dict[str, Any] | None = None) -> pl.DataFrame:
    """Run one SELECT on a read-only connection (values as $parameters)."""
    with reading(db) as con:
        return warehouse.query(con, sql, params)


def _last_run(con: duckdb.DuckDBPyConnection) -> dict:
    if not warehouse.table_exists(con, "ops", "runs"):
        return {}
    # the run that wrote the marts: the last one to finish, which is not the latest night
    # when an earlier night was rescanned
    rows = warehouse.query(con, "select run_json from ops.runs order by finished_at desc, run_date desc "
                           "limit 1")
    return json.loads(rows["run_json"][0]) if rows.height else {}


def thresholds(db: str | Path | None = None) -> dict[str, float]:
    """The flag and high thresholds of the last scan (rules.toml's when no run is recorded)."""
    with reading(db) as con:
        scoring = _last_run(con).get("scoring", {})
    rules = load_rules().scoring
    return {
        "flag": float(scoring.get("flag_threshold", rules.get("flag_threshold", 0.6))),
        "high": float(scoring.get("high_threshold", rules.get("high_threshold", 0.8))),
    }


# ----------------------------------------------------------------------------- tonight


@dataclass
class Tonight:
    """What the last scan found. orders: one row per flagged order, as in support's CSV
    (highest score first; flagged_late: an earlier night's order reaching the threshold
    tonight); rings: one row per ring (most GMV first); history: one row per night."""

    run: dict
    orders: pl.DataFrame
    rings: pl.DataFrame
    history: pl.DataFrame
    money: dict[str, float] = field(default_factory=dict)


def tonight(db: str | Path | None = None) -> Tonight:
    """Tonight's flagged orders and rings, the money at stake and the previous nights."""
    with reading(db) as con:
        run = _last_run(con)
        late = ("union all by name select *, true as flagged_late from marts.late_flags "
                if warehouse.table_exists(con, "marts", "late_flags") else "")
        orders = warehouse.query(
            con,
            "select order_id, shop_id, buyer_id, referrer_id, created_at, amount::double as amount, "
            "status, round(score, 4) as score, risk_level, reason_codes, ring_id, ring_kind, "
            "flagged_late from (select *, false as flagged_late from marts.order_scores "
            "where risk_level <> 'low' " + late + ") flagged "
            # the stored score, not the rounded one: support's CSV is in this order
            "order by flagged.score desc, order_id",
        )
        rings = warehouse.query(
            con,
            "select ring_id, kind, size, order_count, gmv::double as gmv, "
            "commission_at_stake::double as commission_at_stake, "
            "commission_pending::double as commission_pending, evidence, members "
            "from marts.rings order by gmv desc, ring_id",
        )
        history = warehouse.query(
            con,
            "select run_date, orders_scored, orders_flagged, accounts_flagged, rings, quarantined_rows "
            "from ops.runs order by run_date",
        ) if warehouse.table_exists(con, "ops", "runs") else pl.DataFrame()
        # on the orders support got tonight (late flags too), as run.json counts it; the
        # ledger's order_flagged is the whole window's, for the scorecards
        late_ids = "union all select order_id from marts.late_flags " if late else ""
        listed_commission = (
            "select coalesce(sum(c.amount), 0)::double from marts.commission_ledger c "
            "where c.order_id in (select order_id from marts.order_scores where risk_level <> 'low' "
            + late_ids + ") and c.status ")
        commission = warehouse.scalar(con, listed_commission + "<> 'reversed'") \
            if warehouse.table_exists(con, "marts", "commission_ledger") else 0.0
        pending = warehouse.scalar(con, listed_commission + "= 'pending'") \
            if warehouse.table_exists(con, "marts", "commission_ledger") else 0.0
        ring_gmv = warehouse.scalar(  # each order once, though it may be in two rings
            con, "select gmv::double from marts.ring_totals"
        ) if warehouse.table_exists(con, "marts", "ring_totals") else float(rings["gmv"].sum() or 0)
    money = {
        "flagged_gmv": round(float(orders["amount"].sum() or 0), 2),
        "commission_on_flagged_orders": round(float(commission or 0), 2),
        "commission_still_pending": round(float(pending or 0), 2),
        "ring_gmv": round(float(ring_gmv or 0), 2),
    }
    return Tonight(run, orders, rings, history, money)


def ring_orders(db: str | Path | None, ring_id: str) -> pl.DataFrame:
    """grain: one row per order the ring is responsible for, in time order."""
    return read(
        db,
        "select r.order_id, s.created_at, s.buyer_id, s.shop_id, s.product_id, s.referrer_id, "
        "s.amount::double as amount, s.status, round(s.score, 4) as score, s.risk_level, s.reason_codes "
        # the window's scores: a ring's orders reach back over earlier nights, while
        # marts.order_scores holds tonight's export only
        "from intermediate.ring_orders r join intermediate.order_scores s using (order_id) "
        "where r.ring_id = $ring_id order by s.created_at, r.order_id",
        {"ring_id": ring_id},
    )


def ring_graph(db: str | Path | None, ring_id: str) -> nx.Graph:
    """graphs.ring_graph for one ring: its accounts (kind 'account'), the identifiers two or
    more share (kind: the identifier type) and who invited whom among them (edges of kind
    'invite'; a deep chain also shows the uplines outside the ring it hangs from, kind
    'upline')."""
    with reading(db) as con:
        ring = warehouse.query(
            con, "select kind, members from marts.rings where ring_id = $ring_id", {"ring_id": ring_id}
        )
        if ring.is_empty():
            raise KeyError(f"no ring {ring_id!r} in marts.rings")
        members = [m for m in (ring["members"][0] or "").split(";") if m]
        identifiers = graphs.member_identifiers(con, members)
        invites = graphs.member_invites(con, members, uplines=ring["kind"][0] == "deep_chain")
        owners = warehouse.query(
            con, "select account_id from intermediate.ring_members where ring_id = $r and role = 'owner'",
            {"r": ring_id},
        )["account_id"].to_list()
    graph = graphs.ring_graph(members, identifiers, invites)
    graph.graph.update(ring_id=ring_id, kind=ring["kind"][0], owner=owners[0] if owners else None)
    return graph


def ring_drawing(db: str | Path | None, ring_id: str) -> Figure:
    """A drawing of one ring, as the report draws it: accounts (circles; the owner red,
    uplines grey), the identifiers they share (squares labelled by type and number, never by
    value) and invitations (dashed red); three or more accounts sharing exactly the same
    neighbours are one larger circle 'N accounts', and a ring too large to read keeps its
    most connected part (the title says how much). Like every figure here it is not
    registered with pyplot: a notebook shows it once, where it is returned or displayed."""
    graph = ring_graph(db, ring_id)
    fig = Figure(figsize=(8, 5.5))
    ax = fig.subplots()
    note = charts.draw_ring(ax, graph, graph.graph.get("owner"), english=True)
    accounts = sum(1 for _, d in graph.nodes(data=True) if d["kind"] == "account")
    shared = sum(1 for _, d in graph.nodes(data=True) if d["kind"] not in charts.PERSONS)
    ax.set_title(f"{graph.graph['kind']} ring {ring_id}: {accounts} accounts, {shared} shared identifiers"
                 + (f"\n{note}" if note else ""), fontsize=11)
    return fig


# ----------------------------------------------------------------------------- thresholds


def truth(db: str | Path | None = None, labels: str | Path | None = None) -> pl.DataFrame:
    """grain: one row per order with a known outcome: label 1 = fraud, 0 = honest, and its
    source. Support's verdicts (ops.verdicts) when any exist, else the labels folder's
    orders.csv (generated worlds), else no rows."""
    with reading(db) as con:
        verdicts = feedback.labelled_orders(con)
    if verdicts.height:
        return verdicts.select("order_id", pl.col("label").cast(pl.Int8), pl.lit("verdicts").alias("source"))
    if labels is not None and (Path(labels) / "orders.csv").exists():
        return pl.read_csv(Path(labels) / "orders.csv", infer_schema=False).select(
            "order_id", pl.col("is_fraud").cast(pl.Int8).alias("label"), pl.lit("labels").alias("source")
        )
    return pl.DataFrame(schema={"order_id": pl.String, "label": pl.Int8, "source": pl.String})


def _scored_with_truth(db: str | Path | None, labels: str | Path | None) -> pl.DataFrame:
    """Tonight's scores with their outcome; `alertable` is false for orders an allow-list
    entry keeps from alerting (their score stays, they are never sent to support)."""
    scores = read(db, "select order_id, created_at, score, risk_level, reason_codes, "
                      "suppressed_by is null as alertable from marts.order_scores")
    return scores.join(truth(db, labels).drop("source"), on="order_id", how="left")


def _precision_recall(selected: pl.Expr, frame: pl.DataFrame) -> dict[str, Any]:
    """Precision among the selected orders with a known outcome; recall of the fraud, left
    empty when outcomes are known only for orders tonight flagged (support's verdicts on its
    own list): fraud the scan missed is then unknown and recall would read 1.0.

    Verdicts on unflagged orders are a sample of them (the README asks for a random one):
    each outcome stands for as many orders of its stratum (flagged or not) as the sample
    leaves out, so 1 fraud among 300 of 18,000 unflagged orders counts as ~60 missed. With
    the generator's labels every outcome is known and each counts once."""
    selected = selected & pl.col("alertable")  # the allow-list keeps these from support
    stratum = pl.col("risk_level") == "low"  # allow-listed orders too: support never saw them
    sizes = frame.group_by(stratum.alias("unflagged")).len("orders")
    known = frame.filter(pl.col("label").is_not_null())
    # an allow-listed order with a verdict is not an outcome of an unflagged order
    sampled_unflagged = known.filter(stratum & pl.col("alertable")).height
    known = known.with_columns(stratum.alias("unflagged")).join(
        known.group_by(stratum.alias("unflagged")).len("judged").join(sizes, on="unflagged"),
        on="unflagged", how="left",
    ).with_columns((pl.col("orders") / pl.col("judged")).alias("weight"))
    positives = float((known["label"] * known["weight"]).sum() or 0) if sampled_unflagged else 0.0
    picked = known.filter(selected)
    hits = int(picked["label"].sum() or 0)
    weighted_hits = float((picked["label"] * picked["weight"]).sum() or 0)
    return {
        "selected": int(frame.filter(selected).height),
        "selected_with_outcome": picked.height,
        "true_positives": hits,
        "precision": round(hits / picked.height, 4) if picked.height else None,
        "recall": round(min(weighted_hits / positives, 1.0), 4) if positives else None,
    }


def _review_days(db: str | Path | None, frame: pl.DataFrame) -> tuple[pl.Expr, int]:
    """The days support's work on tonight's scores spreads over: one on a warehouse scanned
    night by night (tonight's export, its new orders and the updates to older ones, is one
    night's list), the days orders were made on a first scan of a backfill."""
    with reading(db) as con:
        nightly = (warehouse.table_exists(con, "ops", "runs")
                   and warehouse.scalar(con, "select count(distinct run_date) from ops.runs") > 1)
    if nightly:
        return pl.lit(0), 1
    return pl.col("created_at").dt.date(), max(frame["created_at"].dt.date().n_unique(), 1)


def budget_curve(db: str | Path | None = None, labels: str | Path | None = None,
                 budgets: Sequence[int] = DEFAULT_BUDGETS) -> pl.DataFrame:
    """grain: one row per review budget (orders support checks per day): support reviews
    each day's `budget` highest-scored orders; precision among the reviewed orders with a
    known outcome, recall of all known fraud. Days as `_review_days` counts them."""
    frame = _scored_with_truth(db, labels)
    day, days = _review_days(db, frame)
    frame = frame.with_columns(
        pl.when(pl.col("alertable")).then(pl.col("score")).rank("ordinal", descending=True)
        .over(day).alias("day_rank")
    )
    rows = [{"budget_per_day": k, "days": days, **_precision_recall(pl.col("day_rank") <= k, frame)}
            for k in budgets]
    return pl.DataFrame(rows)


def threshold_curve(db: str | Path | None = None, labels: str | Path | None = None,
                    points: Sequence[float] = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)) -> pl.DataFrame:
    """grain: one row per flag threshold: orders at or above it, precision and recall."""
    frame = _scored_with_truth(db, labels)
    days = _review_days(db, frame)[1]
    rows = []
    for t in points:
        pr = _precision_recall(pl.col("score") >= t, frame)
        rows.append({"flag_threshold": t, "flagged_per_day": round(pr["selected"] / days, 1), **pr})
    return pl.DataFrame(rows)


def precision_recall_figure(curve: pl.DataFrame, x: str, xlabel: str) -> Figure:
    """Precision and recall (from budget_curve or threshold_curve) against column `x`."""
    fig = Figure(figsize=(7, 3.2))
    ax = fig.subplots()
    ax.plot(curve[x].to_list(), curve["precision"].to_list(), marker="o", label="precision")
    ax.plot(curve[x].to_list(), curve["recall"].to_list(), marker="s", label="recall")
    ax.set_xlabel(xlabel)
    ax.set_ylim(0, 1.05)
    ax.legend(frameon=False)
    ax.grid(alpha=0.3)
    return fig


def rule_hits(db: str | Path | None = None, labels: str | Path | None = None) -> pl.DataFrame:
    """grain: one row per reason code: orders it fired on, of them flagged, and its
    precision among orders with a known outcome (verdicts, else labels)."""
    frame = _scored_with_truth(db, labels).explode("reason_codes").drop_nulls("reason_codes")
    ruleset = load_rules()
    return (
        frame.group_by(pl.col("reason_codes").alias("code"))
        .agg(
            pl.len().alias("orders"),
            (pl.col("risk_level") != "low").sum().alias("flagged"),
            pl.col("label").is_not_null().sum().alias("with_outcome"),
            pl.col("label").mean().round(4).alias("precision"),
        )
        .with_columns(
            pl.col("code").replace_strict({c: ruleset.text(c, "en") for c in ruleset.rules},
                                          default=pl.col("code")).alias("meaning")
        )
        .sort(["flagged", "code"], descending=[True, False])
    )


@dataclass
class WhatIf:
    """summary: one row per threshold (tonight's and the proposed); added / dropped: one row
    per order the proposed threshold would newly flag / stop flagging."""

    summary: pl.DataFrame
    added: pl.DataFrame
    dropped: pl.DataFrame


def what_if(db: str | Path | None = None, flag_threshold: float = 0.6,
            labels: str | Path | None = None) -> WhatIf:
    """What flagging at `flag_threshold` instead of tonight's threshold would change: the
    scores are kept, only the cut moves (a review budget, if the scan used one, is ignored)."""
    current = thresholds(db)["flag"]
    frame = _scored_with_truth(db, labels)
    summary = pl.DataFrame([
        {"threshold": label, "flag_threshold": t, **_precision_recall(pl.col("score") >= t, frame)}
        for label, t in (("tonight", current), ("proposed", flag_threshold))
    ])
    cols = ["order_id", "created_at", "score", "reason_codes", "label"]
    frame = frame.filter(pl.col("alertable"))  # allow-listed orders reach support at neither
    added = frame.filter((pl.col("score") >= flag_threshold) & (pl.col("score") < current)).select(cols)
    dropped = frame.filter((pl.col("score") < flag_threshold) & (pl.col("score") >= current)).select(cols)
    return WhatIf(summary, added.sort("score", descending=True), dropped.sort("score", descending=True))


# ----------------------------------------------------------------------------- investigate


@dataclass
class Investigation:
    """accounts: one row per account looked at; timeline: one row per event (order,
    refund, commission) in time order; linked: one row per (account, linked account);
    chain: one row per account up the inviter chain and per direct invitee; why: one row
    per account with the reason it was or was not flagged."""

    query: dict  # what was asked, plus accounts_found and accounts_shown when a cap applied
    accounts: pl.DataFrame
    timeline: pl.DataFrame
    linked: pl.DataFrame
    chain: pl.DataFrame
    why: pl.DataFrame


def example_account(db: str | Path | None = None) -> str | None:
    """An account worth a look: the owner of tonight's strongest self-referral ring, else
    the highest-scored flagged account, else None."""
    rows = read(
        db,
        """
        select account_id from (
            select m.account_id, 0 as pick, -r.strength as strength from intermediate.ring_members m
            join intermediate.rings r using (ring_id) where m.role = 'owner'
            union all
            select account_id, 1, -score from marts.flagged_accounts
        ) order by pick, strength, account_id limit 1
        """,
    )
    return rows["account_id"][0] if rows.height else None


def _resolve_accounts(con, account_id, device, address_key, shop_id) -> list[str]:
    """The accounts asked about, riskiest first (highest order score in the window), so a
    cap on a busy shop or hub address keeps the ones worth a look."""
    if account_id:
        return [account_id]
    if device:
        sql = ("select distinct account_id from intermediate.account_identifiers "
               "where id_type = 'device' and id_value = lower(trim($v))")
        value = device
    elif address_key:
        sql = ("select distinct o.buyer_id as account_id from staging.orders o "
               "left join intermediate.norm_address a using (address) where $v in "
               "(a.address_strict_key, a.address_building_key, a.address_compound_key, o.address)")
        value = address_key
    else:
        sql = "select distinct buyer_id as account_id from staging.orders where shop_id = $v"
        value = shop_id
    ranked = (f"with found as ({sql}) select f.account_id from found f "
              "left join (select buyer_id, max(score) as best from intermediate.order_scores "
              "group by 1) s on s.buyer_id = f.account_id "
              "order by s.best desc nulls last, f.account_id")
    return warehouse.query(con, ranked, {"v": value})["account_id"].to_list()


def investigate(db: str | Path | None = None, *, account_id: str | None = None, device: str | None = None,
                address_key: str | None = None, shop_id: str | None = None,
                max_accounts: int = 200) -> Investigation:
    """Everything the warehouse knows about one account, or the accounts behind one device,
    address (a normalised key from order_keys or the address as written) or shop. For a
    shop the timeline holds the shop's own orders and commissions; the other frames cover
    its buyers. Orders are the lookback window's (intermediate.order_scores), not only
    tonight's export. When more than `max_accounts` accounts match, the riskiest are kept
    and `query` says how many were found and shown (a warning is logged too)."""
    given = {k: v for k, v in {"account_id": account_id, "device": device,
                               "address_key": address_key, "shop_id": shop_id}.items() if v}
    if len(given) != 1:
        raise ValueError("give exactly one of account_id, device, address_key, shop_id")
    flag = thresholds(db)["flag"]
    with reading(db) as con:
        found = _resolve_accounts(con, account_id, device, address_key, shop_id)
        ids = found[:max_accounts]
        if len(found) > max_accounts:
            log.warning("%d accounts match %s; showing the %d with the highest order scores "
                        "(max_accounts)", len(found), given, len(ids))
            given |= {"accounts_found": len(found), "accounts_shown": len(ids)}
        p = {"ids": ids, "shop": shop_id}
        accounts = warehouse.query(
            con,
            "select a.account_id, a.registered_at, a.inviter_id, a.is_distributor, t.referral_depth, "
            "t.direct_invitees, t.downline_size from staging.accounts a "
            "left join intermediate.referral_tree t using (account_id) "
            "where list_contains($ids::varchar[], a.account_id) order by a.account_id",
            p,
        )
        timeline = warehouse.query(
            con,
            """
            with orders as (
                -- the window's orders: marts.order_scores holds tonight's export only
                select s.*, o.refunded_at, o.refund_amount from intermediate.order_scores s
                join staging.orders o using (order_id)
                where case when $shop is null then list_contains($ids::varchar[], s.buyer_id)
                           else s.shop_id = $shop end
            )
            select created_at as at, 'order' as event, order_id, buyer_id as account_id, shop_id,
                   amount::double as amount, status || ' · ' || risk_level || ' ' || round(score, 3)
                   || ' ' || array_to_string(reason_codes, ',') as detail
            from orders
            union all
            select refunded_at, 'refund', order_id, buyer_id, shop_id, refund_amount::double, status
            from orders where refunded_at is not null
            union all
            select coalesce(c.settled_at, c.created_at), 'commission', c.order_id, c.beneficiary_id,
                   c.shop_id, c.amount::double, 'L' || c.level || ' ' || c.status || ' (' || c.source || ')'
            from marts.commission_ledger c
            where case when $shop is null then list_contains($ids::varchar[], c.beneficiary_id)
                       else c.shop_id = $shop end
            order by 1, 3, 2
            """,
            p,
        )
        linked = warehouse.query(
            con,
            """
            with pairs as (
                select *, list_contains($ids::varchar[], account_a) as a_is_looked_at
                from intermediate.account_pairs
                where list_contains($ids::varchar[], account_a) or list_contains($ids::varchar[], account_b)
            )
            select case when a_is_looked_at then account_a else account_b end as account_id,
                   case when a_is_looked_at then account_b else account_a end as linked_account,
                   round(link_weight, 3) as link_weight, n_families, shared_types
            from pairs order by account_id, link_weight desc, linked_account
            """,
            p,
        )
        chain = warehouse.query(
            con,
            """
            with recursive up(account_id, level, upline_id) as (
                select account_id, 1, inviter_id from staging.accounts
                where list_contains($ids::varchar[], account_id) and inviter_id is not null
                union all
                select u.account_id, u.level + 1, a.inviter_id from up u
                join staging.accounts a on a.account_id = u.upline_id
                where a.inviter_id is not null and u.level < 20
            )
            select account_id, 'upline' as direction, level, upline_id as other_id from up
            union all
            select inviter_id, 'invitee', 1, account_id from staging.accounts
            where list_contains($ids::varchar[], inviter_id)
            order by 1, 2 desc, 3, 4
            """,
            p,
        )
        why = warehouse.query(
            con,
            """
            with best as (
                select buyer_id as account_id, max(score) as max_score,
                       arg_max(reason_codes, score) as top_reasons, count(*) as orders,
                       count(*) filter (where risk_level <> 'low') as flagged_orders
                from intermediate.order_scores where list_contains($ids::varchar[], buyer_id)
                group by 1
            ),
            ids as (select unnest($ids::varchar[]) as account_id)
            select i.account_id, f.account_id is not null as flagged, round(f.score, 4) as account_score,
                   f.ring_id, f.ring_kind, f.ring_role, b.orders, b.flagged_orders,
                   round(b.max_score, 4) as max_order_score, b.top_reasons, s.grade as distributor_grade,
                   s.reasons as distributor_concerns
            from ids i
            left join marts.flagged_accounts f using (account_id)
            left join best b using (account_id)
            left join marts.distributor_scorecard s on s.distributor_id = i.account_id
            order by 1
            """,
            p,
        )
    why = why.with_columns(
        pl.when(pl.col("flagged") & pl.col("ring_id").is_not_null())
        .then(pl.format("flagged: member ({}) of {} ring {}", pl.col("ring_role"), pl.col("ring_kind"),
                        pl.col("ring_id")))
        .when(pl.col("flagged"))
        .then(pl.format("flagged: an order scored {} >= threshold {}", pl.col("max_order_score"),
                        pl.lit(flag)))
        .when(pl.col("orders").is_null())
        .then(pl.lit("not flagged: no orders as a buyer in the lookback window"))
        .otherwise(pl.format("not flagged: highest order score {} < threshold {}", pl.col("max_order_score"),
                             pl.lit(flag)))
        .alias("explanation")
    )
    return Investigation(given, accounts, timeline, linked, chain, why)


# ----------------------------------------------------------------------------- distribution


def scorecard(db: str | Path | None = None, grades: Sequence[str] | None = None, limit: int | None = None
              ) -> pl.DataFrame:
    """grain: one row per distributor, riskiest first (grade, risk points, commission at
    stake); only the given grades when `grades` is set."""
    frame = read(
        db,
        "select * exclude (commission_detail) from marts.distributor_scorecard "
        "order by grade desc, risk_points desc, commission_at_stake desc, distributor_id",
    )
    if grades:
        frame = frame.filter(pl.col("grade").is_in(list(grades)))
    return frame.head(limit) if limit else frame


def programme(db: str | Path | None = None, shop_id: str | None = None) -> dict[str, Any]:
    """The programme-health marts for every shop, or one (shop_id 'ALL' = the whole
    programme): health (one row per shop), depth (one row per shop and depth), levels (one
    row per shop, level and status: paid against configured), and commission_source
    (the commissions file, or the configured rates when the export had none)."""
    p = {"shop": shop_id}
    with reading(db) as con:
        return {
            "health": warehouse.query(con, "select * from marts.programme_health where $shop is null "
                                           "or shop_id = $shop order by shop_id <> 'ALL', shop_id", p),
            "depth": warehouse.query(con, "select * from marts.programme_depth where $shop is null "
                                          "or shop_id = $shop order by shop_id, referral_depth", p),
            "levels": warehouse.query(con, "select * from marts.commission_by_level where $shop is null "
                                           "or shop_id = $shop order by shop_id, level, status", p),
            "commission_source": (
                health.SOURCE_FILE if health.commissions_given(con) else health.SOURCE_RATES
            ),
        }


def grade_counts(db: str | Path | None = None) -> pl.DataFrame:
    """grain: one row per grade A..E: distributors and the commission they earned."""
    return read(
        db,
        "select grade, count(*) as distributors, sum(commission_earned)::double as commission_earned, "
        "sum(commission_at_stake)::double as commission_at_stake "
        "from marts.distributor_scorecard group by 1 order by 1",
    )


def cohorts(db: str | Path | None = None) -> dict[str, pl.DataFrame]:
    """retention: one row per (cohort_month, channel); curves: one row per (cohort_month,
    channel, day)."""
    with reading(db) as con:
        return {
            "retention": warehouse.query(con, "select * from marts.cohort_retention order by 1, 2"),
            "curves": warehouse.query(con, "select * from marts.cohort_curves order by 1, 2, 3"),
        }
