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
from orderguard.rules import RuleSet, check_features, load_rules

log = logging.getLogger(__name__)


class NightKeeper:
    """Stores tonight's scoring inputs batch by batch as the scorer makes them, so they are
    written once, straight into ops.feature_history; a rerun of the night replaces them.
    Kept: tonight's export, and the earlier orders flagged tonight that no earlier night
    listed (tonight's late flags: the evidence against them grew, so their inputs of their
    own night would replay them unflagged and quote stale evidence to support)."""

    def __init__(self, con: duckdb.DuckDBPyConnection, run_date: str):
        self.con, self.run_date, self.started = con, run_date, False
        if warehouse.table_exists(con, "ops", "feature_history"):
            con.execute("delete from ops.feature_history where run_date = $night", {"night": run_date})
        self.listed_before = (
            warehouse.query(con, "select order_id from ops.published_flags where night <> $night",
                            {"night": run_date})["order_id"]
            if warehouse.table_exists(con, "ops", "published_flags") else pl.Series([], dtype=pl.String))

    def add(self, scored_inputs: pl.DataFrame) -> None:
        """One batch of the window's orders: the scorer's inputs with is_tonight, and the
        scores' risk_level and suppressed_by."""
        late = (pl.col("risk_level") != "low") & ~pl.col("order_id").is_in(self.listed_before.implode())
        inputs = scored_inputs.filter(pl.col("is_tonight") | late).drop("is_tonight", "risk_level")
        if inputs.is_empty() and self.started:
            return
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


def stored_features(con: duckdb.DuckDBPyConnection) -> list[str]:
    """What a rule may read: the stored scoring inputs, what the scorer adds to them, and the
    packaged rules' features (one new in this version is not stored before its first night:
    a rule on it never fires on older nights, as the module says, but it is no typo)."""
    stored = warehouse.query(con, "select column_name from information_schema.columns "
                                  "where table_schema = 'ops' and table_name = 'feature_history'")
    packaged = [c.feature for r in load_rules(None).rules.values() for c in (r.condition, *r.also)]
    return [*stored["column_name"], *detect.ADDED_WHEN_SCORING, *packaged]


def flagged(scored: pl.DataFrame, ruleset: RuleSet) -> pl.Series:
    threshold = float(ruleset.scoring.get("flag_threshold", 0.6))
    return (scored["score"] >= threshold) & scored["suppressed_by"].is_null()


# orders scored per pass: the stored inputs are ~75 columns, so a whole 10M-order window
# read at once took 13.6 GiB; a pass of this many keeps a backtest near 1-2 GiB
BACKTEST_BATCH_ROWS = 250_000

# The latest stored inputs of every order created between $start and $end (an order of
# several nights' windows is stored once per night). Picking the latest on (order_id,
# run_date) alone keeps the wide rows out of the grouping.
_LATEST_INPUTS = """
with stored as (
    select order_id, max(run_date) as run_date
    from ops.feature_history
    where created_at::date between $start and $end
    group by order_id
)
select h.*
from ops.feature_history h
join stored s on s.order_id = h.order_id and s.run_date = h.run_date
where h.created_at::date between $start and $end
"""


def run_backtest(con: duckdb.DuckDBPyConnection, live: RuleSet, candidate: RuleSet,
                 start: date, end: date, batch_rows: int = BACKTEST_BATCH_ROWS) -> pl.DataFrame:
    """grain: one row per order day in [start, end]: orders, flagged live / candidate, both,
    only live, only candidate, and precision of each among orders with verdicts.
    The stored inputs are scored `batch_rows` orders at a time and counted per day as they
    pass (every rule reads only its order's row), so memory stays flat however long the
    period or large the window."""
    if not warehouse.table_exists(con, "ops", "feature_history"):
        raise ValueError("no stored nights yet: run a scan first")
    for ruleset in (live, candidate):
        check_features(ruleset, stored_features(con), "the stored nights' features")
    labels = feedback.labelled_orders(con)
    params = {"start": start, "end": end}
    with con.cursor() as stream:  # its own cursor: the stream stays open while batches pass
        reader = stream.sql(_LATEST_INPUTS, params=warehouse.bind(_LATEST_INPUTS, params))
        counts = [_day_counts(pl.from_arrow(table), live, candidate, labels)
                  for table in detect.batches_of(reader.to_arrow_reader(batch_rows), batch_rows)]
    if not counts:
        first, last = con.execute("select min(created_at)::date, max(created_at)::date "
                                  "from ops.feature_history").fetchone()
        raise ValueError(f"no stored orders between {start} and {end}: the stored orders were "
                         f"created {first} to {last} (scans keep --keep-days nights)")

    def precision(name: str) -> pl.Expr:
        hits, true = pl.col(f"{name}_with_verdict"), pl.col(f"{name}_confirmed")
        return pl.when(hits > 0).then(true / hits).otherwise(None).round(4)

    return (
        pl.concat(counts)
        .group_by("day")
        .sum()
        .select(
            "day", "orders",
            pl.col("live").alias("flagged_live"),
            pl.col("candidate").alias("flagged_candidate"),
            "both", "only_live", "only_candidate",
            precision("live").alias("precision_live"),
            precision("candidate").alias("precision_candidate"),
        )
        .sort("day")
    )


def _day_counts(inputs: pl.DataFrame, live: RuleSet, candidate: RuleSet,
                labels: pl.DataFrame) -> pl.DataFrame:
    """grain: one row per order day of one batch: the counts run_backtest sums."""
    frame = inputs.select("order_id", pl.col("created_at").dt.date().alias("day"))
    for name, ruleset in (("live", live), ("candidate", candidate)):
        scored = detect.score_features(inputs, ruleset).with_columns(inputs["suppressed_by"])
        frame = frame.with_columns(flagged(scored, ruleset).alias(name))
    frame = frame.join(labels, on="order_id", how="left")
    live, cand, judged = pl.col("live"), pl.col("candidate"), pl.col("label").is_not_null()
    confirmed = pl.col("label") == 1
    return frame.group_by("day").agg(
        pl.len().alias("orders"),
        live.sum().alias("live"),
        cand.sum().alias("candidate"),
        (live & cand).sum().alias("both"),
        (live & ~cand).sum().alias("only_live"),
        (~live & cand).sum().alias("only_candidate"),
        (live & judged).sum().alias("live_with_verdict"),
        (live & confirmed).sum().alias("live_confirmed"),
        (cand & judged).sum().alias("candidate_with_verdict"),
        (cand & confirmed).sum().alias("candidate_confirmed"),
    )
