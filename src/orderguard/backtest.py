"""Try a rule change on history before it goes live.

Every scan keeps its orders' scoring inputs (features, ring flags, forest rank, supervised
points, allow-list suppression) in ops.feature_history, one row per (run_date, order_id).
A backtest scores those same inputs with the live rules and with a candidate rules file,
and reports per day how many orders each would flag, the overlap, and precision where
support's verdicts exist.
"""

from __future__ import annotations

import logging
from datetime import date

import duckdb
import polars as pl

from orderguard import detect, feedback, warehouse
from orderguard.rules import RuleSet

log = logging.getLogger(__name__)


class NightKeeper:
    """Stores tonight's scoring inputs batch by batch as the scorer makes them, so they are
    written once, straight into ops.feature_history; a rerun of the night replaces them."""

    def __init__(self, con: duckdb.DuckDBPyConnection, run_date: str):
        self.con, self.run_date, self.started = con, run_date, False
        if warehouse.table_exists(con, "ops", "feature_history"):
            con.execute("delete from ops.feature_history where run_date = $night", {"night": run_date})

    def add(self, inputs: pl.DataFrame) -> None:
        """One batch of tonight's orders: the scorer's inputs with suppressed_by."""
        batch = inputs.with_columns(pl.lit(self.run_date).alias("run_date")).to_arrow()  # noqa: F841
        if self.started:  # the table exists and has this feature set
            self.con.execute("insert into ops.feature_history by name select * from batch")
        elif not warehouse.table_exists(self.con, "ops", "feature_history"):
            self.con.execute("create table ops.feature_history as select * from batch")
        else:
            added = self._add_new_features(batch)
            try:
                self.con.execute("insert into ops.feature_history by name select * from batch")
            except duckdb.BinderException:
                # a feature dropped or retyped with this version: older snapshots cannot be replayed
                log.warning("feature set changed; ops.feature_history restarts from %s", self.run_date)
                self.con.execute("create or replace table ops.feature_history as select * from batch")
            else:
                if added:
                    log.info("ops.feature_history: new features %s, empty on earlier nights",
                             ", ".join(added))
        self.started = True

    def _add_new_features(self, batch) -> list[str]:
        """Columns tonight's inputs have and the stored nights lack are added to the table
        (null on earlier nights, where a backtest sees a rule on them not fire), so a version
        that only adds features keeps the history backtests replay."""
        stored = set(warehouse.query(
            self.con, "select column_name from information_schema.columns "
            "where table_schema = 'ops' and table_name = 'feature_history'")["column_name"])
        types = dict(self.con.sql("select column_name, column_type from (describe batch)").fetchall())
        added = [name for name in types if name not in stored]
        for name in added:
            self.con.execute(f"alter table ops.feature_history add column "
                             f"{warehouse.ident(name)} {types[name]}")
        return added


def flagged(scored: pl.DataFrame, ruleset: RuleSet) -> pl.Series:
    threshold = float(ruleset.scoring.get("flag_threshold", 0.6))
    return (scored["score"] >= threshold) & scored["suppressed_by"].is_null()


def run_backtest(con: duckdb.DuckDBPyConnection, live: RuleSet, candidate: RuleSet,
                 start: date, end: date) -> pl.DataFrame:
    """grain: one row per order day in [start, end]: orders, flagged live / candidate, both,
    only live, only candidate, and precision of each among orders with verdicts."""
    if not warehouse.table_exists(con, "ops", "feature_history"):
        raise ValueError("no stored nights yet: run a scan first")
    inputs = warehouse.query(
        con,
        "select * from ops.feature_history where created_at::date between $start and $end "
        "qualify row_number() over (partition by order_id order by run_date desc) = 1 "
        "order by order_id",
        {"start": start, "end": end},
    )
    if inputs.is_empty():
        first, last = con.execute("select min(created_at)::date, max(created_at)::date "
                                  "from ops.feature_history").fetchone()
        raise ValueError(f"no stored orders between {start} and {end}: the stored orders were "
                         f"created {first} to {last} (scans keep --keep-days nights)")
    labels = feedback.labelled_orders(con) if warehouse.table_exists(con, "ops", "verdicts") else None
    frame = inputs.select("order_id", pl.col("created_at").dt.date().alias("day"))
    for name, ruleset in (("live", live), ("candidate", candidate)):
        scored = detect.score_features(inputs, ruleset).with_columns(inputs["suppressed_by"])
        frame = frame.with_columns(flagged(scored, ruleset).alias(name))
    if labels is not None and labels.height:
        frame = frame.join(labels, on="order_id", how="left")
    else:
        frame = frame.with_columns(pl.lit(None, pl.Int8).alias("label"))

    def precision(col: str) -> pl.Expr:
        hit = pl.col(col) & pl.col("label").is_not_null()
        return (
            pl.when(hit.sum() > 0)
            .then((pl.col("label").cast(pl.Float64) * hit.cast(pl.Float64)).sum() / hit.sum())
            .otherwise(None)
            .round(4)
        )

    return (
        frame.group_by("day")
        .agg(
            pl.len().alias("orders"),
            pl.col("live").sum().alias("flagged_live"),
            pl.col("candidate").sum().alias("flagged_candidate"),
            (pl.col("live") & pl.col("candidate")).sum().alias("both"),
            (pl.col("live") & ~pl.col("candidate")).sum().alias("only_live"),
            (~pl.col("live") & pl.col("candidate")).sum().alias("only_candidate"),
            precision("live").alias("precision_live"),
            precision("candidate").alias("precision_candidate"),
        )
        .sort("day")
    )
