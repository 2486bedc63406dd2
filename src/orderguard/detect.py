"""intermediate -> rings and scores: the graph stage and the scoring stage.

Both read the intermediate tables and write small result tables back:
intermediate.rings / ring_members / ring_orders, intermediate.account_scores,
intermediate.order_scores.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa

from orderguard import allowlist, config, feedback, graphs, ring_ids, scoring, warehouse
from orderguard.rules import RuleSet, check_features, model_max_points, rule_hits

log = logging.getLogger(__name__)

RING_FLAGS = {kind: f"ring_{kind}" for kind in graphs.RING_KINDS}
SCORING_BATCH_ROWS = 500_000


def _ring_orders(con: duckdb.DuckDBPyConnection, rings: list[graphs.Ring]) -> pl.DataFrame:
    """grain: one row per (ring_id, order_id): the orders each ring is responsible for."""
    members = ring_member_frame(rings)
    orders = warehouse.query(
        con, "select order_id, buyer_id, shop_id, product_id, created_at::date as day "
        "from intermediate.order_keys"
    )
    parts = []
    by_kind = members.join(
        pl.DataFrame(
            {
                "ring_id": [r.ring_id for r in rings],
                "ring_shops": [list(r.shops) for r in rings],
                "ring_products": [list(r.products) for r in rings],
                "owner": [r.meta.get("owner") for r in rings],
            },
            schema={"ring_id": pl.String, "ring_shops": pl.List(pl.String),
                    "ring_products": pl.List(pl.String), "owner": pl.String},
        ),
        on="ring_id",
        how="left",
    )
    person_rings = by_kind.filter(pl.col("kind") != "fake_shipping")
    joined = orders.join(person_rings, left_on="buyer_id", right_on="account_id")
    on_ring_product = pl.col("ring_products").list.contains(pl.col("product_id"))
    # A brushing ring whose every member bought its products once, all on one day, is one
    # event: a group purchase (拼单) of colleagues or neighbours looks just like that, so only
    # those orders are the ring's, not the members' other shopping. Farms come back for
    # their targets; their accounts' other orders are the camouflage and stay the ring's.
    joined = joined.with_columns(
        _bought_once=on_ring_product.sum().over(["ring_id", "buyer_id"]) == 1,
        _days=pl.col("day").filter(on_ring_product).n_unique().over("ring_id"),
    ).with_columns(_one_event=pl.col("_bought_once").all().over("ring_id") & (pl.col("_days") == 1))
    joined = joined.filter(
        # an owner's own shopping is not the ring's doing; a flood only counts at its shop
        (pl.col("owner").is_null() | (pl.col("buyer_id") != pl.col("owner")))
        & ((pl.col("kind") != "malicious") | pl.col("ring_shops").list.contains(pl.col("shop_id")))
        & ((pl.col("kind") != "brushing") | on_ring_product | ~pl.col("_one_event"))
    )
    parts.append(joined.select("ring_id", "kind", "order_id"))
    shipping = [
        (r.ring_id, r.kind, o) for r in rings if r.kind == "fake_shipping" for o in r.meta["orders"]
    ]
    if shipping:
        parts.append(pl.DataFrame(shipping, schema=["ring_id", "kind", "order_id"], orient="row"))
    return pl.concat(parts).unique(maintain_order=True).sort(["ring_id", "order_id"])


def ring_member_frame(rings: list[graphs.Ring]) -> pl.DataFrame:
    """grain: one row per (ring_id, account_id)."""
    rows = [
        (r.ring_id, r.kind, m, "owner" if r.meta.get("owner") == m else "member")
        for r in rings
        if r.kind != "fake_shipping"
        for m in r.members
    ]
    return pl.DataFrame(
        rows, schema={c: pl.String for c in ("ring_id", "kind", "account_id", "role")}, orient="row"
    )


def ring_frame(rings: list[graphs.Ring]) -> pl.DataFrame:
    """grain: one row per ring_id."""
    return pl.DataFrame(
        {
            "ring_id": [r.ring_id for r in rings],
            "kind": [r.kind for r in rings],
            "size": [len(r.members) for r in rings],
            "members": [";".join(r.members) for r in rings],
            "strength": [round(r.strength, 6) for r in rings],
            "density": [float(r.meta.get("density", 0.0)) for r in rings],
            "evidence": [r.evidence for r in rings],
            "evidence_zh": [r.evidence_zh or None for r in rings],
            "shops": [";".join(r.shops) for r in rings],
            "products": [";".join(r.products) for r in rings],
        },
        schema={
            "ring_id": pl.String, "kind": pl.String, "size": pl.Int64, "members": pl.String,
            "strength": pl.Float64, "density": pl.Float64, "evidence": pl.String, "evidence_zh": pl.String,
            "shops": pl.String, "products": pl.String,
        },
    )


def run_graph_stage(con: duckdb.DuckDBPyConnection, settings: graphs.GraphSettings, night: str) -> dict:
    # one person's accounts: used by the ring detectors, invite loops and self-commission
    components = graphs.identity_components(graphs.linking_pairs(con, settings), settings)
    rings = graphs.detect_rings(con, settings, components)
    # issue 5: a ring that mostly carries over from an earlier night keeps that night's id
    rings = ring_ids.stabilise(con, rings, night)
    warehouse.write_frame(con, "intermediate", "rings", ring_frame(rings))
    warehouse.write_frame(con, "intermediate", "ring_members", ring_member_frame(rings))
    warehouse.write_frame(con, "intermediate", "ring_orders", _ring_orders(con, rings))
    invites = warehouse.query(
        con, "select inviter_id, account_id from staging.accounts where inviter_id is not null"
    )
    loops = graphs.invite_loops(components, invites)
    warehouse.write_frame(con, "intermediate", "invite_loops", loops)
    commissions = warehouse.query(
        con, "select c.order_id, o.buyer_id, c.beneficiary_id, c.level from staging.commissions c "
        "join staging.orders o using (order_id)"
    )
    warehouse.write_frame(con, "intermediate", "self_commission",
                          graphs.commission_to_self(components, commissions))
    by_kind: dict[str, int] = {}
    for r in rings:
        by_kind[r.kind] = by_kind.get(r.kind, 0) + 1
    return {"rings": len(rings), "by_kind": by_kind, "accounts_on_invite_loops": loops.height}


def forest_points_expr(cfg: dict) -> pl.Expr:
    return scoring.forest_points(
        pl.col("forest_rank"), model_max_points(cfg, "forest_max_points"), cfg.get("forest_top_share", 0.02),
        cfg.get("forest_tie_points", 0.0),
    )


def forest_anomalous_expr(cfg: dict) -> pl.Expr:
    """The account is in the forest's top share (the tie-breaking points alone are no reason)."""
    return scoring.forest_points(pl.col("forest_rank"), 1.0, cfg.get("forest_top_share", 0.02)) > 0


# order_features columns carried into intermediate.order_scores for marts.order_scores
# (and is_tonight, the mart's filter: a semi join of the window on ops.tonight_orders cost
# ~2 s at 10M orders)
MART_ORDER_FACTS = ("product_id", "referrer_id", "status", "is_tonight")


# what the scorer adds to the stream's features before the rules read them
ADDED_WHEN_SCORING = ("supervised_points", "forest_points", "forest_anomalous")


def score_features(features: pl.DataFrame, ruleset: RuleSet) -> pl.DataFrame:
    """grain: one row per order. Rule points + forest points + supervised points -> score.
    Shared by the nightly scan and the backtest, so both score the same way."""
    cfg = ruleset.scoring
    features = features.with_columns(
        forest_points_expr(cfg).alias("forest_points"), forest_anomalous_expr(cfg).alias("forest_anomalous")
    )
    hits = rule_hits(features, ruleset)
    extra = features["forest_points"] + features["supervised_points"]
    scored = features.select("order_id", "shop_id", "buyer_id", "created_at", "amount").with_columns(
        # rounded like the score: how rows fall into batches can move the last bit of a sum
        pl.Series("rule_points", hits["rule_points"]).round(6),
        features["forest_points"],
        features["forest_anomalous"],
        features["supervised_points"],
        pl.Series("points", hits["rule_points"] + extra),
        pl.Series("buyer_points", hits["buyer_rule_points"] + extra),
        pl.Series("reason_codes", hits["reason_codes"]),
    )
    scale = cfg.get("scale", 2.5)
    return scored.with_columns(
        scoring.combine(pl.col("points"), scale).round(6).alias("score"),
        scoring.combine(pl.col("buyer_points"), scale).round(6).alias("buyer_score"),
    )


@dataclass
class ScoreResult:
    model_path: str
    model_action: str
    flag_threshold: float
    high_threshold: float
    threshold_source: str
    review_budget: int | None
    # every order of the lookback window is scored (features need the window); only
    # tonight's are published: run.json's summary counts those
    window_orders_scored: int
    window_orders_flagged: int
    supervised: str = ""


def _account_frame(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """grain: one row per account_id, with graph context for the forest."""
    return warehouse.query(
        con,
        """
        select a.*, coalesce(t.referral_depth, 0) as referral_depth,
               coalesce(t.downline_size, 0) as downline_size,
               coalesce(r.ring_size, 0) as ring_size, coalesce(r.ring_strength, 0) as ring_strength,
               coalesce(r.ring_density, 0) as ring_density,
               (l.account_id is not null)::int as invite_loop
        from intermediate.account_features a
        left join intermediate.referral_tree t using (account_id)
        left join (
            select m.account_id, max(g.size) as ring_size, max(g.strength) as ring_strength,
                   max(g.density) as ring_density
            from intermediate.ring_members m join intermediate.rings g using (ring_id)
            group by 1
        ) r using (account_id)
        left join intermediate.invite_loops l using (account_id)
        order by a.account_id
        """,
    )


def batches_of(reader: pa.RecordBatchReader, rows: int):
    """The reader's record batches (DuckDB hands out ~120k rows at a time) gathered into
    tables of at least `rows` rows: fewer, larger scoring passes."""
    pending, count = [], 0
    for record_batch in reader:
        pending.append(record_batch)
        count += record_batch.num_rows
        if count >= rows:
            yield pa.Table.from_batches(pending)
            pending, count = [], 0
    if pending:
        yield pa.Table.from_batches(pending)


def earlier_forest_folder(con: duckdb.DuckDBPyConnection, models_dir: Path) -> Path | None:
    """The project's models/ when this warehouse scanned nights before and keeps its forest
    elsewhere: versions before 3b7ddff saved every warehouse's forest in models/, so after
    an upgrade a warehouse other than the project's finds its own folder empty and a new
    forest is trained (every score moves a little once). Worth naming in the log and
    run.json; not worth loading (it may be the demo's or a scratch warehouse's)."""
    legacy = config.project_root() / "models"
    if Path(models_dir).resolve() == legacy.resolve():
        return None
    if not warehouse.table_exists(con, "ops", "runs") or not warehouse.scalar(
            con, "select count(*) from ops.runs"):
        return None  # a new warehouse: its first forest is expected
    return legacy


def run_scoring_stage(
    con: duckdb.DuckDBPyConnection,
    ruleset: RuleSet,
    models_dir: Path,
    seed: int,
    review_budget: int | None = None,
    keep_inputs: Callable[[pl.DataFrame], None] | None = None,
) -> ScoreResult:
    """Score every order of the window in batches into intermediate.order_scores. The
    inputs (features + ring flags + forest rank + supervised points, is_tonight) with the
    scores' risk_level and suppressed_by go to `keep_inputs`, a batch at a time (the scan
    stores tonight's and its late flags' in ops.feature_history, backtest.NightKeeper)."""
    cfg = ruleset.scoring
    accounts = _account_frame(con)
    window = warehouse.query(
        con, "select min(created_at) as start, max(created_at) as end from staging.orders"
    ).row(0, named=True)
    model = scoring.load_or_train_forest(
        accounts, models_dir, seed, {"training_window": window, "trained_on_accounts": accounts.height},
        earlier_folder=earlier_forest_folder(con, models_dir),
    )
    anomaly = model.forest.score_samples(accounts, threads=config.DUCKDB_THREADS)
    account_scores = accounts.select("account_id").with_columns(
        pl.Series("forest_anomaly", anomaly),
        pl.Series("forest_rank", scoring.forest_rank(anomaly)),
    ).with_columns(forest_points_expr(cfg).alias("forest_points"))
    # the stream's joins read the buyers' forest scores from the warehouse
    warehouse.write_frame(con, "intermediate", "account_scores", account_scores)
    stream = warehouse.sql_text("intermediate", "scoring_stream")
    ring_orders = warehouse.query(con, "select order_id, ring_id, kind from intermediate.ring_orders")
    primary_ring = (
        ring_orders.join(
            warehouse.query(con, "select ring_id, strength from intermediate.rings"), on="ring_id"
        )
        .sort(["order_id", "strength", "ring_id"], descending=[False, True, False])
        .group_by("order_id", maintain_order=True)
        .first()
        .select("order_id", "ring_id", pl.col("kind").alias("ring_kind"))
    )

    labels = feedback.labelled_orders(con)
    con.register("verdict_labels", labels.select("order_id").to_arrow())
    con.execute("create or replace temp view scoring_stream_input as select f.* "
                "from intermediate.order_features f semi join verdict_labels l using (order_id)")
    labelled = warehouse.query(con, stream).sort("order_id")
    con.execute("drop view scoring_stream_input")
    con.unregister("verdict_labels")
    if missing := set(RING_FLAGS.values()) - set(labelled.columns):
        raise AssertionError(f"scoring_stream.sql lacks ring flags {sorted(missing)}")
    check_features(ruleset, [*labelled.columns, *ADDED_WHEN_SCORING], "the scan's features")
    # the model joins only if it ranks the later verdicts better than the rules and forest
    # do without it: these are the points it would be added to
    without_model = score_features(labelled.with_columns(pl.lit(0.0).alias("supervised_points")),
                                   ruleset).select("order_id", "points")
    supervised_max = model_max_points(cfg, "supervised_max_points")
    model_sup, sup = feedback.train_supervised(  # is_tonight says when, not what: no feature
        labelled.drop("is_tonight"), labels, models_dir, int(cfg.get("min_verdicts", 200)), seed,
        baseline=without_model, max_points=supervised_max, unsent=feedback.unsent_verdicts(con),
    )
    flag, high = float(cfg.get("flag_threshold", 0.6)), float(cfg.get("high_threshold", 0.8))
    # entities support cleared (ops.allowlist) keep their score but raise no alert
    as_of = warehouse.scalar(con, "select max(created_at) from staging.orders")
    allowlist.ensure_table(con)
    allowlist.key_older_address_entries(con)
    suppressed = allowlist.suppressed_orders(con, as_of)

    def finish(scored: pl.DataFrame) -> pl.DataFrame:
        """Risk level (before any review budget), suppression, the forest's reason, the ring."""
        scored = scored.join(suppressed, on="order_id", how="left")
        return scored.with_columns(
            pl.when(pl.col("suppressed_by").is_null())
            .then(scoring.risk_level(pl.col("score"), flag, high))
            .otherwise(pl.lit("low"))
            .alias("risk_level"),
            # every flagged order names at least one reason: the forest's, when no rule fired
            pl.when((pl.col("reason_codes").list.len() == 0) & pl.col("forest_anomalous"))
            .then(pl.lit(["FOREST_ANOMALY"]))
            .otherwise(pl.col("reason_codes"))
            .alias("reason_codes"),
        ).join(primary_ring, on="order_id", how="left")

    def scored_orders(batch: pl.DataFrame) -> pl.DataFrame:
        """Scores of a batch with the order facts marts.order_scores shows beside them, so
        the mart needs no join back to the window's orders (~4 s at 10M orders)."""
        return finish(score_features(batch, ruleset).hstack(batch.select(MART_ORDER_FACTS)))

    # stream the orders through scoring in batches, each written out as it is done, so memory
    # stays flat as the window grows (holding 10M scored orders took ~10 GiB)
    streaming = con.cursor()  # a temp view is its connection's own: made on the cursor
    streaming.execute("create or replace temp view scoring_stream_input as "
                      "select * from intermediate.order_features")
    reader = streaming.sql(stream).to_arrow_reader(SCORING_BATCH_ROWS)
    number = -1
    for number, table in enumerate(batches_of(reader, SCORING_BATCH_ROWS)):
        batch = pl.from_arrow(table)
        if model_sup is not None:
            batch = batch.join(
                feedback.supervised_points(
                    batch, model_sup, sup.meta["features"], supervised_max
                ),
                on="order_id", how="left",
            )
        else:
            batch = batch.with_columns(pl.lit(0.0).alias("supervised_points"))
        batch = batch.with_columns(pl.col("supervised_points").fill_null(0.0))
        scored = scored_orders(batch)
        write = warehouse.write_frame if number == 0 else warehouse.append_frame
        with warehouse.text_uncompressed(con):  # rebuilt every night; feature_history is kept
            write(con, "intermediate", "order_scores", scored)
        if keep_inputs is not None:
            # the rule-independent inputs of the scores, for backtests and support's evidence
            keep_inputs(batch.join(scored.select("order_id", "risk_level", "suppressed_by"),
                                   on="order_id", how="left"))
    if number < 0:  # no orders at all: an empty table with the right columns
        empty = labelled.clear().with_columns(pl.lit(0.0).alias("supervised_points"))
        warehouse.write_frame(con, "intermediate", "order_scores", scored_orders(empty))
    source = "rules.toml thresholds"
    if review_budget:
        # support reviews `review_budget` orders a day: flag the top K of each day at most
        con.execute(
            "update intermediate.order_scores set risk_level = 'low' where order_id in ("
            " select order_id from intermediate.order_scores qualify row_number() over ("
            "  partition by created_at::date order by score desc, order_id) > $budget)",
            {"budget": int(review_budget)},
        ).fetchall()
        source = f"review budget of {review_budget} orders per day with rules.toml thresholds"
    scored_rows = int(warehouse.scalar(con, "select count(*) from intermediate.order_scores"))
    flagged = int(warehouse.scalar(
        con, "select count(*) from intermediate.order_scores where risk_level <> 'low'"))
    log.info("scored the window's %d orders, %d flagged (%s); tonight's are published",
             scored_rows, flagged, model.action)
    return ScoreResult(
        model_path=str(model.path),
        model_action=model.action,
        flag_threshold=flag,
        high_threshold=high,
        threshold_source=source,
        review_budget=review_budget,
        window_orders_scored=scored_rows,
        window_orders_flagged=flagged,
        supervised=sup.reason,
    )
