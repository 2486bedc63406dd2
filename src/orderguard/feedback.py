"""Learning from support: verdicts in, per-rule precision out, and a supervised model.

Support fills the verdict template beside flagged_orders.csv (order_id or account_id,
verdict = confirmed | false_positive, note); `orderguard feedback --verdicts FILE` stores it
in ops.verdicts. Once enough verdicts with both outcomes exist, a HistGradientBoosting
model trained on them adds points to the score; it is always evaluated on verdicts later
in time than the ones it learned from.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import duckdb
import joblib
import numpy as np
import polars as pl
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import average_precision_score

from orderguard import scoring, warehouse

log = logging.getLogger(__name__)

VERDICTS = ("confirmed", "false_positive")
_VERDICT_WORDS = {
    "confirmed": "confirmed", "fraud": "confirmed", "是": "confirmed", "确认": "confirmed",
    "欺诈": "confirmed", "1": "confirmed", "true": "confirmed",
    "false_positive": "false_positive", "fp": "false_positive", "误报": "false_positive",
    "否": "false_positive", "0": "false_positive", "false": "false_positive",
    "honest": "false_positive",
}
MODEL_NAME = "supervised"
EXCLUDED = {"order_id", "shop_id", "buyer_id", "product_id", "referrer_id", "created_at",
            "status", "referrer_shared_types", "registered_at", "inviter_id"}


class VerdictError(ValueError):
    pass


def _ensure_table(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        """create table if not exists ops.verdicts (
            order_id varchar, account_id varchar, verdict varchar, note varchar,
            source_file varchar, source_row bigint, received_at timestamp)"""
    )


def load_verdicts(con: duckdb.DuckDBPyConnection, path: Path) -> dict:
    """Append a verdict file to ops.verdicts. Rows with no id or an unknown verdict are
    reported back (file, row, column) and not stored; a re-sent file replaces its rows."""
    frame = pl.read_csv(path, infer_schema=False, encoding="utf8-lossy")
    frame = frame.rename({c: c.strip().lower().lstrip("\ufeff") for c in frame.columns})
    if "verdict" not in frame.columns or not ({"order_id", "account_id"} & set(frame.columns)):
        raise VerdictError(f"{path}: needs a 'verdict' column and an 'order_id' or 'account_id' column")
    for col in ("order_id", "account_id", "note"):
        if col not in frame.columns:
            frame = frame.with_columns(pl.lit(None, pl.String).alias(col))
    # rows support left blank in the pre-filled template are not verdicts: skip them
    frame = frame.with_row_index("source_row", offset=1).filter(
        pl.col("verdict").fill_null("").str.strip_chars() != ""
    ).with_columns(
        pl.col("verdict").str.strip_chars().str.to_lowercase()
        .replace_strict(_VERDICT_WORDS, default=None).alias("verdict_norm"),
        pl.col("order_id").str.strip_chars().str.strip_prefix("'"),
        pl.col("account_id").str.strip_chars().str.strip_prefix("'"),
    )
    bad = frame.filter(
        pl.col("verdict_norm").is_null()
        | (pl.col("order_id").fill_null("") == "") & (pl.col("account_id").fill_null("") == "")
    )
    good = frame.join(bad.select("source_row"), on="source_row", how="anti")
    rows = good.select(
        pl.col("order_id").replace("", None), pl.col("account_id").replace("", None),
        pl.col("verdict_norm").alias("verdict"), "note",
        pl.lit(str(path)).alias("source_file"), pl.col("source_row").cast(pl.Int64),
        pl.lit(datetime.now().replace(microsecond=0)).alias("received_at"),
    )
    _ensure_table(con)
    con.execute("delete from ops.verdicts where source_file = $f", {"f": str(path)})
    arrow = rows.to_arrow()  # noqa: F841
    con.execute("insert into ops.verdicts select * from arrow")
    problems = [
        f"{path}, row {r['source_row']}, column verdict/order_id: {r['verdict']!r} not usable"
        for r in bad.iter_rows(named=True)
    ]
    return {"stored": rows.height, "rejected": bad.height, "problems": problems[:50]}


def labelled_orders(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """grain: one row per order with a verdict (account verdicts apply to all its orders;
    an order's own verdict wins)."""
    if not warehouse.table_exists(con, "ops", "verdicts"):
        return pl.DataFrame(schema={"order_id": pl.String, "label": pl.Int8})
    return warehouse.query(
        con,
        """
        with direct as (
            select order_id, arg_max(verdict, received_at) as verdict
            from ops.verdicts where order_id is not null group by 1
        ),
        by_account as (
            select o.order_id, arg_max(v.verdict, v.received_at) as verdict
            from ops.verdicts v join intermediate.order_keys o on o.buyer_id = v.account_id
            where v.account_id is not null group by 1
        ),
        combine as (
            select coalesce(d.order_id, a.order_id) as order_id,
                   coalesce(d.verdict, a.verdict) as verdict
            from direct d full join by_account a using (order_id)
        )
        select order_id, (verdict = 'confirmed')::tinyint as label from combine
        """,
    )


def numeric_features(frame: pl.DataFrame) -> list[str]:
    return [
        c for c, t in frame.schema.items()
        if c not in EXCLUDED and (t.is_numeric() or t == pl.Boolean)
    ]


def matrix(frame: pl.DataFrame, columns: list[str]) -> np.ndarray:
    return frame.select(
        [pl.col(c).cast(pl.Float64) if c in frame.columns else pl.lit(None, pl.Float64).alias(c)
         for c in columns]
    ).to_numpy()


@dataclass
class SupervisedResult:
    active: bool
    reason: str
    meta: dict | None = None


def train_supervised(
    features: pl.DataFrame, labels: pl.DataFrame, models_dir: Path, min_verdicts: int, seed: int
) -> tuple[HistGradientBoostingClassifier | None, SupervisedResult]:
    """Fit on the verdict-labelled orders; report AP on the latest 30 % (by order time) of
    the verdicts, learned only from the earlier 70 %."""
    data = features.join(labels, on="order_id").sort(["created_at", "order_id"])
    n_pos = int(data["label"].sum()) if data.height else 0
    n_neg = data.height - n_pos
    if data.height < min_verdicts or n_pos == 0 or n_neg == 0:
        return None, SupervisedResult(
            False, f"{data.height} verdicts ({n_pos} confirmed, {n_neg} false positive); "
            f"needs {min_verdicts} with both outcomes")
    columns = numeric_features(features)
    x, y = matrix(data, columns), data["label"].to_numpy()
    cut = int(len(y) * 0.7)
    # a column without a single value (an optional input the export lacks) cannot be binned
    # by HistGradientBoosting: learn from the columns that hold a value in the earlier part
    keep = ~np.isnan(x[:cut]).all(axis=0)
    columns, x = [c for c, k in zip(columns, keep, strict=True) if k], x[:, keep]
    later_ap = None
    if 0 < y[:cut].sum() < cut and 0 < y[cut:].sum() < len(y) - cut:
        early = HistGradientBoostingClassifier(random_state=seed, max_iter=200).fit(x[:cut], y[:cut])
        later_ap = float(average_precision_score(y[cut:], early.predict_proba(x[cut:])[:, 1]))
    model = HistGradientBoostingClassifier(random_state=seed, max_iter=200).fit(x, y)
    meta = {
        "model": MODEL_NAME, "versions": scoring.versions(), "features": columns, "seed": seed,
        "verdicts": int(len(y)), "confirmed": n_pos,
        "training_window": {"start": str(data["created_at"].min()), "end": str(data["created_at"].max())},
        "metrics": {"average_precision_on_later_30pct": later_ap},
    }
    models_dir.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, models_dir / f"{MODEL_NAME}.joblib")
    (models_dir / f"{MODEL_NAME}.meta.json").write_text(json.dumps(meta, indent=2, default=str), "utf-8")
    return model, SupervisedResult(True, f"trained on {len(y)} verdicts", meta)


def supervised_points(features: pl.DataFrame, model, columns: list[str], max_points: float) -> pl.DataFrame:
    """grain: one row per order: points = max_points x P(fraud | verdict-like features)."""
    proba = model.predict_proba(matrix(features, columns))[:, 1]
    return features.select("order_id").with_columns(
        pl.Series("supervised_points", np.round(max_points * proba, 6))
    )


def rule_precision(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """grain: one row per reason code: hits among orders with verdicts and their precision."""
    labels = labelled_orders(con)
    if labels.is_empty():
        return pl.DataFrame(schema={"code": pl.String, "verdicts": pl.Int64, "precision": pl.Float64})
    scores = warehouse.query(con, "select order_id, reason_codes from marts.order_scores")
    return (
        scores.join(labels, on="order_id").explode("reason_codes").drop_nulls("reason_codes")
        .group_by(pl.col("reason_codes").alias("code"))
        .agg(pl.len().alias("verdicts"), pl.col("label").mean().round(4).alias("precision"))
        .sort("code")
    )


def record_rule_hits(con: duckdb.DuckDBPyConnection, run_date: str) -> int:
    """ops.rule_hits, grain: one row per (run_date, code): tonight's hits and flagged orders
    per reason code, and precision among orders with verdicts, so rules can be followed
    night after night. A rerun of a night replaces its rows."""
    hits = warehouse.query(
        con,
        "select code, count(*) as hits, count(*) filter (where risk_level <> 'low') as flagged "
        "from (select unnest(reason_codes) as code, risk_level from marts.order_scores) "
        "group by 1 order by 1",
    )
    precision = rule_precision(con)
    rows = hits.join(precision, on="code", how="left").select(
        pl.lit(run_date).alias("run_date"), "code", "hits", "flagged",
        pl.col("verdicts").fill_null(0), "precision",
    )
    con.execute(
        "create table if not exists ops.rule_hits (run_date varchar, code varchar, hits bigint, "
        "flagged bigint, verdicts bigint, precision double)"
    )
    con.execute("delete from ops.rule_hits where run_date = $d", {"d": run_date})
    con.register("tonight_rule_hits", rows.to_arrow())
    try:
        con.execute("insert into ops.rule_hits by name select * from tonight_rule_hits")
    finally:
        con.unregister("tonight_rule_hits")
    return rows.height
