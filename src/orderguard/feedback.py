"""Learning from support: verdicts in, per-rule precision out, and a supervised model.

Support fills the verdict template beside flagged_orders.csv (order_id or account_id,
verdict = confirmed | false_positive, note); `orderguard feedback --verdicts FILE` stores it
in ops.verdicts. Once enough verdicts with both outcomes exist, a HistGradientBoosting
model trained on them adds points to the score; it is always evaluated on verdicts later
in time than the ones it learned from.
"""

from __future__ import annotations

import io
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
# matched after NFKC (full-width letters), lower case, and spaces or hyphens read as "_"
_VERDICT_WORDS = {
    "confirmed": "confirmed", "fraud": "confirmed", "是": "confirmed", "确认": "confirmed",
    "欺诈": "confirmed", "1": "confirmed", "true": "confirmed", "yes": "confirmed", "y": "confirmed",
    "confirm": "confirmed", "确认刷单": "confirmed", "刷单": "confirmed", "确认欺诈": "confirmed",
    "属实": "confirmed", "违规": "confirmed", "作弊": "confirmed",
    "false_positive": "false_positive", "fp": "false_positive", "误报": "false_positive",
    "否": "false_positive", "0": "false_positive", "false": "false_positive",
    "honest": "false_positive", "no": "false_positive", "n": "false_positive",
    "not_fraud": "false_positive", "正常": "false_positive", "误判": "false_positive",
    "误杀": "false_positive", "非欺诈": "false_positive", "不是": "false_positive",
}
# a row support could not decide yet: skipped like a blank verdict, and counted
_UNDECIDED_WORDS = {"uncertain", "unsure", "unknown", "pending", "tbd", "?", "？", "待定", "不确定",
                    "未知", "待核实", "核实中"}
MODEL_NAME = "supervised"
# not learned from: ids and text, and days_since_shipped, which counts to the scan's date
# (verdicts on earlier nights' orders would teach "older means fraud")
EXCLUDED = {"order_id", "shop_id", "buyer_id", "product_id", "referrer_id", "created_at",
            "status", "referrer_shared_types", "registered_at", "inviter_id", "days_since_shipped"}


class VerdictError(ValueError):
    pass


def _ensure_table(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        """create table if not exists ops.verdicts (
            order_id varchar, account_id varchar, verdict varchar, note varchar,
            source_file varchar, source_row bigint, received_at timestamp, night varchar)"""
    )
    # night came later: a verdict stored before it gets the newest night published by then
    con.execute("alter table ops.verdicts add column if not exists night varchar")
    if warehouse.table_exists(con, "ops", "runs"):
        con.execute(
            """update ops.verdicts v set night = (
                select max(r.run_date) from ops.runs r
                where try_cast(r.finished_at as timestamp) <= v.received_at)
            where v.night is null""")
    # older versions appended a verdict beside the one it replaced: keep each id's latest
    con.execute(
        """delete from ops.verdicts where rowid in (
            select rowid from (
                select rowid, row_number() over (
                    partition by coalesce('order:' || order_id, 'account:' || account_id)
                    order by received_at desc, rowid desc) as newest
                from ops.verdicts)
            where newest > 1)"""
    )


def upgrade_verdicts(con: duckdb.DuckDBPyConnection) -> None:
    """A scan's first step with verdicts: a table stored by an older version gets the
    columns readers expect (night, filled from ops.runs)."""
    if warehouse.table_exists(con, "ops", "verdicts"):
        _ensure_table(con)


_KNOWN_IDS = {  # the ids a verdict may name: orders and accounts kept in history
    "order": "select distinct id from verdict_ids "
             "where id in (select order_id from staging.orders_history)",
    "account": "select distinct id from verdict_ids "
               "where id in (select account_id from staging.accounts_history)",
}


def _known_ids(con: duckdb.DuckDBPyConnection, kind: str, ids: list[str]) -> set[str]:
    """Which of `ids` (order or account ids) the warehouse has seen."""
    if not ids or not warehouse.table_exists(con, "staging", f"{kind}s_history"):
        return set()
    con.register("verdict_ids", pl.DataFrame({"id": ids}).to_arrow())
    try:
        return {r[0] for r in con.execute(_KNOWN_IDS[kind]).fetchall()}
    finally:
        con.unregister("verdict_ids")


def _problem(path: Path, row: int, column: str, text: str) -> str:
    # row as in quarantine.csv (data rows from 1); the line number is what Excel shows
    return f"{path}, row {row} (line {row + 1} with the header), column {column}: {text}"


def _verdict_text(path: Path) -> str:
    """The file as text: UTF-8 (with or without BOM) or, as Excel saves CSV on Chinese
    Windows, GBK/GB18030; anything else is refused rather than read as garbled verdicts.
    Lines end in \n: Excel's "CSV (Macintosh)" ends them in a bare \r, which a CSV reader
    takes for one long line."""
    raw = path.read_bytes()
    for codec in ("utf-8-sig", "gb18030"):
        try:
            text = raw.decode(codec)
            break
        except UnicodeDecodeError as exc:
            problem = exc
    else:
        raise VerdictError(f"{path}: neither UTF-8 nor GBK text (undecodable bytes at byte "
                           f"{problem.start}); save it as CSV UTF-8")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _delimiter(text: str) -> str:
    """Comma, or the tab or semicolon of a sheet saved as "Text (Tab delimited)" or in a
    locale whose list separator is ';', judged by the header line."""
    header = text.split("\n", 1)[0]
    if "," in header:
        return ","
    return max(("\t", ";"), key=header.count) if ("\t" in header or ";" in header) else ","


def _normalise_word(expr: pl.Expr) -> pl.Expr:
    return (expr.str.normalize("NFKC").str.strip_chars().str.to_lowercase()
            .str.replace_all(r"[\s\-]+", "_"))


# a received verdict r and a stored one v on the same order, or on the same account
_SAME_JUDGED = ("(r.order_id is not null and v.order_id = r.order_id) "
                "or (r.order_id is null and v.order_id is null and v.account_id = r.account_id)")
# stored verdicts a received one overturns, in the order they were received
_CHANGED_VERDICTS = f"""
select coalesce(r.order_id, r.account_id) as judged, v.verdict as before, v.source_file as before_file,
       v.source_row as before_row, r.verdict as after, r.source_row as after_row
from received_verdicts r join ops.verdicts v on {_SAME_JUDGED}
where v.verdict <> r.verdict
order by r.source_row
"""


def load_verdicts(con: duckdb.DuckDBPyConnection, path: Path) -> dict:
    """Store a verdict file in ops.verdicts, one row per judged order or account: a verdict
    on an id that already has one replaces it (a re-sent or corrected file, or support
    changing its mind), every other stored verdict stays, whatever the file was called.
    Rows with an unknown verdict, no id, or an id the warehouse has never seen are reported
    back (file, row, column) and not stored; of one id repeated in a file the last row counts."""
    if not Path(path).is_file():
        raise VerdictError(f"{path}: no such file")
    text = _verdict_text(Path(path))
    try:
        frame = pl.read_csv(io.StringIO(text), infer_schema=False, separator=_delimiter(text))
    except pl.exceptions.NoDataError:
        raise VerdictError(f"{path}: the file is empty (expected a header: order_id,verdict,note)") from None
    except pl.exceptions.PolarsError as exc:  # a ragged row, an unclosed quote
        first = str(exc).strip().splitlines()[0]
        header = text.split("\n", 1)[0][:80]
        raise VerdictError(f"{path}: not a readable CSV ({first}; its first line is {header!r}, "
                           "expected order_id,verdict,note); save it from Excel as CSV UTF-8, "
                           "one verdict per row") from None
    frame = frame.rename({c: c.strip().lower().lstrip("\ufeff") for c in frame.columns})
    if "verdict" not in frame.columns or not ({"order_id", "account_id"} & set(frame.columns)):
        found = ", ".join(repr(c) for c in frame.columns[:8])
        raise VerdictError(f"{path}: needs a 'verdict' column and an 'order_id' or 'account_id' "
                           f"column in its first line; found {found} (a title row above the "
                           "header, or another layout than verdicts_template.csv?)")
    for col in ("order_id", "account_id", "note"):
        if col not in frame.columns:
            frame = frame.with_columns(pl.lit(None, pl.String).alias(col))
    # rows support left blank in the pre-filled template, or marked undecided, are not
    # verdicts: skip them
    frame = frame.with_row_index("source_row", offset=1).with_columns(
        _normalise_word(pl.col("verdict").fill_null("")).alias("verdict_word"))
    undecided = frame.filter(pl.col("verdict_word").is_in(list(_UNDECIDED_WORDS))).height
    frame = frame.filter(
        (pl.col("verdict_word") != "") & ~pl.col("verdict_word").is_in(list(_UNDECIDED_WORDS))
    ).with_columns(
        pl.col("verdict_word").replace_strict(_VERDICT_WORDS, default=None).alias("verdict_norm"),
        pl.col("order_id").str.strip_chars().str.strip_prefix("'").replace("", None),
        pl.col("account_id").str.strip_chars().str.strip_prefix("'").replace("", None),
    )
    known_orders = _known_ids(con, "order", frame["order_id"].drop_nulls().unique().to_list())
    known_accounts = _known_ids(con, "account", frame["account_id"].drop_nulls().unique().to_list())
    problems, bad_rows = [], set()
    for r in frame.iter_rows(named=True):
        row = r["source_row"]
        if r["verdict_norm"] is None:
            problems.append(_problem(path, row, "verdict", f"{r['verdict']!r} is not a verdict "
                                     "(confirmed / 确认 / 是, or false_positive / 误报 / 否)"))
        elif r["order_id"] is None and r["account_id"] is None:
            problems.append(_problem(path, row, "order_id", "empty (and no account_id either)"))
        elif r["order_id"] is not None and r["order_id"] not in known_orders:
            problems.append(_problem(path, row, "order_id",
                                     f"{r['order_id']!r} is not an order this warehouse holds "
                                     "(never scanned, or older than --keep-days)"))
        elif r["order_id"] is None and r["account_id"] not in known_accounts:
            problems.append(_problem(path, row, "account_id",
                                     f"{r['account_id']!r} is not an account this warehouse knows"))
        else:
            continue
        bad_rows.add(row)
    good = frame.filter(~pl.col("source_row").is_in(list(bad_rows)))
    # an order verdict names the order; an account verdict (no order id) the account
    good = good.with_columns(
        pl.coalesce(pl.lit("order:") + pl.col("order_id"), pl.lit("account:") + pl.col("account_id"))
        .alias("judged")
    )
    repeats = good.filter(pl.col("judged").is_duplicated() & ~pl.col("judged").is_last_distinct())
    notes = [_problem(path, r["source_row"], "order_id" if r["order_id"] else "account_id",
                      f"{(r['order_id'] or r['account_id'])!r} is judged again further down; "
                      "the later row counts") for r in repeats.iter_rows(named=True)]
    good = good.unique("judged", keep="last", maintain_order=True)
    rows = good.select(
        "order_id", "account_id",
        pl.col("verdict_norm").alias("verdict"), "note",
        pl.lit(str(path)).alias("source_file"), pl.col("source_row").cast(pl.Int64),
        pl.lit(datetime.now().replace(microsecond=0)).alias("received_at"),
        # the night support judged from: an account cleared covers what it had seen by then
        pl.lit(latest_night(con), pl.String).alias("night"),
    )
    _ensure_table(con)
    con.register("received_verdicts", rows.to_arrow())
    try:
        changed = warehouse.query(con, _CHANGED_VERDICTS)
        con.execute(f"delete from ops.verdicts v using received_verdicts r where {_SAME_JUDGED}")
        con.execute("insert into ops.verdicts by name select * from received_verdicts")
    finally:
        con.unregister("received_verdicts")
    # two people (or one, twice) judging an order differently is worth a second look
    notes += [f"{r['judged']} was {r['before']} ({r['before_file']}, row {r['before_row']}), "
              f"now {r['after']} (row {r['after_row']})" for r in changed.iter_rows(named=True)]
    confirmed = int((rows["verdict"] == "confirmed").sum())
    return {"stored": rows.height, "rejected": len(bad_rows),
            "confirmed": confirmed, "false_positive": rows.height - confirmed,
            "undecided": undecided, "changed": changed.height,
            "problems": problems[:50], "notes": notes[:50], "more_notes": max(0, len(notes) - 50)}


def latest_night(con: duckdb.DuckDBPyConnection) -> str | None:
    """The newest night published (ops.runs), the list support judges from; None before any."""
    if not warehouse.table_exists(con, "ops", "runs"):
        return None
    return warehouse.scalar(con, "select max(run_date) from ops.runs")


def latest_verdicts_sql(con: duckdb.DuckDBPyConnection) -> str:
    """Two CTEs for a query's WITH list: order_verdicts (order_id, verdict) and
    account_verdicts (account_id, verdict, night: the newest night published when it was
    stored), each id's latest verdict (a row naming an order judges that order only); empty
    before the first `orderguard feedback`."""
    if not warehouse.table_exists(con, "ops", "verdicts"):
        return """order_verdicts as (
            select null::varchar as order_id, null::varchar as verdict where false
        ),
        account_verdicts as (
            select null::varchar as account_id, null::varchar as verdict, null::varchar as night
            where false
        )"""
    # a table from before the night column (read-only here: an analyst's notebook) has none
    night = ("night" if warehouse.scalar(
        con, "select count(*) from information_schema.columns where table_schema = 'ops' "
        "and table_name = 'verdicts' and column_name = 'night'") else "null::varchar")
    return """order_verdicts as (
            select order_id, arg_max(verdict, received_at) as verdict from ops.verdicts
            where order_id is not null group by 1
        ),
        account_verdicts as (
            select account_id, arg_max(verdict, received_at) as verdict,
                   arg_max(""" + night + """, received_at) as night
            from ops.verdicts where order_id is null group by 1
        )"""


# An account support cleared as a false positive (a verdict row naming the account, no
# order) judges what support saw: it covers the account's orders created by the end of the
# night it judged from plus this many days (the orders placed while support was checking),
# flagged for no reason beyond those support had been shown on the account. A later order,
# or a new reason (a ring forming, a shared payer), is a new case with a real action: before,
# a clearance muted every later order (a ten-night replay listed 27 later fraud orders of 4
# wrongly cleared buyers as 观察; 2 with one day, 7 with three). Clearing an account for
# longer is the allow-list's job (`orderguard allow --account ID --days N`: named, with a
# reason and an expiry).
ACCOUNT_CLEARANCE_DAYS = 1


def account_clearances_sql() -> str:
    """CTEs after latest_verdicts_sql's, for a scan (needs ops.published_flags,
    staging.orders_history and intermediate.order_scores): account_clearances (account_id,
    verdict, night, seen_codes: the reason codes support had been shown on the account's
    orders by the night it judged). Whether a verdict covers an order: covered_by_account()."""
    return """seen_on_account as (  -- the reasons listed on the account's orders by then
            select v.account_id, unnest(coalesce(p.reason_codes, s.reason_codes)) as code
            from account_verdicts v
            join staging.orders_history h on h.buyer_id = v.account_id
            join ops.published_flags p on p.order_id = h.order_id and p.night <= v.night
            left join intermediate.order_scores s on s.order_id = p.order_id
        ),
        account_clearances as (
            select v.account_id, v.verdict, v.night,
                   coalesce(list(distinct x.code) filter (where x.code is not null), []) as seen_codes
            from account_verdicts v left join seen_on_account x using (account_id)
            group by all
        )"""


def covered_by_account(verdict: str, created_at: str, codes: str) -> str:
    """SQL: whether the account verdict `verdict` (a row of account_clearances) covers an
    order created at `created_at` flagged with `codes`. A confirmed account covers all its
    orders (their actions still stop the money); a cleared one (false_positive) only orders
    created before its night plus $clearance_days days and flagged for no reason beyond those
    support had seen on the account: a later order, or a new reason, is a new case."""
    return (f"coalesce({verdict}.verdict = 'confirmed' or ("
            f"{created_at} < {verdict}.night::date + (cast($clearance_days as integer) + 1) "
            f"and list_has_all({verdict}.seen_codes, {codes})), false)")


def labelled_orders(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """grain: one row per order with a verdict (account verdicts apply to all its orders;
    an order's own verdict wins)."""
    if not warehouse.table_exists(con, "ops", "verdicts"):
        return pl.DataFrame(schema={"order_id": pl.String, "label": pl.Int8})
    return warehouse.query(
        con,
        "with " + latest_verdicts_sql(con) + """,
        by_account as (
            select o.order_id, v.verdict
            from account_verdicts v join intermediate.order_keys o on o.buyer_id = v.account_id
        ),
        combine as (
            select coalesce(d.order_id, a.order_id) as order_id,
                   coalesce(d.verdict, a.verdict) as verdict
            from order_verdicts d full join by_account a using (order_id)
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


# what the model must add to the later verdicts' average precision to be used: less is
# noise from a few orders, and the price of using it is a model's say on every order
MIN_AP_GAIN = 0.01


# order verdicts on orders support was never sent (a sample of what the rules pass) the
# supervised model needs before it scores the window: verdicts on the flagged list alone
# describe that list, and a model learned from them scored the rest of the window as fraud
# (ten mistaken verdicts among 976 put 4,223 rows, 88 % honest, on one night's list)
MIN_UNSENT_VERDICTS = 100


def unsent_verdicts(con: duckdb.DuckDBPyConnection) -> int:
    """Order verdicts on orders of the history support was never sent flagged."""
    if not warehouse.table_exists(con, "ops", "verdicts"):
        return 0
    sent = ("and order_id not in (select order_id from ops.published_flags)"
            if warehouse.table_exists(con, "ops", "published_flags") else "")
    return int(warehouse.scalar(
        con, f"select count(distinct order_id) from ops.verdicts where order_id is not null {sent}"))


def _not_used(models_dir: Path, reason: str, meta: dict | None = None
              ) -> tuple[None, SupervisedResult]:
    """The model is not used tonight: an earlier night's files go, so none describes a model
    that no longer scores."""
    for stale in (f"{MODEL_NAME}.joblib", f"{MODEL_NAME}.meta.json"):
        (models_dir / stale).unlink(missing_ok=True)
    return None, SupervisedResult(False, reason, meta)


def train_supervised(
    features: pl.DataFrame, labels: pl.DataFrame, models_dir: Path, min_verdicts: int, seed: int,
    baseline: pl.DataFrame | None = None, max_points: float = 2.0, unsent: int | None = None,
) -> tuple[HistGradientBoostingClassifier | None, SupervisedResult]:
    """Fit on the verdict-labelled orders; measure AP on the latest 30 % (by order time) of
    the verdicts, learned only from the earlier 70 %. With `baseline` (order_id, points: the
    points the model's would be added to), the model is used only when adding its points
    ranks those later verdicts better than the baseline alone: verdicts that the rules
    already separate (support's confirmed flags beside a sample of honest orders) teach it
    nothing but when and where the orders were, and it then flagged thousands of honest ones.
    With `unsent` (unsent_verdicts), it is used only when at least MIN_UNSENT_VERDICTS of
    the verdicts are on orders support was never sent."""
    data = features.join(labels, on="order_id").sort(["created_at", "order_id"])
    if baseline is not None:
        data = data.join(baseline.rename({"points": "_baseline_points"}), on="order_id", how="left",
                         maintain_order="left")
    n_pos = int(data["label"].sum()) if data.height else 0
    n_neg = data.height - n_pos
    if data.height < min_verdicts or n_pos == 0 or n_neg == 0:
        return None, SupervisedResult(
            False, f"{data.height} verdicts ({n_pos} confirmed, {n_neg} false positive); "
            f"needs {min_verdicts} with both outcomes")
    if unsent is not None and unsent < MIN_UNSENT_VERDICTS:
        return _not_used(models_dir, f"{data.height} verdicts ({n_pos} confirmed); not used: only "
                         f"{unsent} are on orders support was not sent, {MIN_UNSENT_VERDICTS} needed. "
                         "Verdicts on the flagged list alone describe that list; judge a random "
                         "sample of unflagged orders too")
    columns = numeric_features(features)
    x, y = matrix(data, columns), data["label"].to_numpy()
    cut = int(len(y) * 0.7)
    # a column without a single value (an optional input the export lacks) cannot be binned
    # by HistGradientBoosting: learn from the columns that hold a value in the earlier part
    keep = ~np.isnan(x[:cut]).all(axis=0)
    columns, x = [c for c, k in zip(columns, keep, strict=True) if k], x[:, keep]
    later_ap = later_ap_without = later_ap_with = None
    if 0 < y[:cut].sum() < cut and 0 < y[cut:].sum() < len(y) - cut:
        early = HistGradientBoostingClassifier(random_state=seed, max_iter=200).fit(x[:cut], y[:cut])
        proba = early.predict_proba(x[cut:])[:, 1]
        later_ap = float(average_precision_score(y[cut:], proba))
        if baseline is not None:
            points = data["_baseline_points"].fill_null(0.0).to_numpy()[cut:]
            later_ap_without = float(average_precision_score(y[cut:], points))
            later_ap_with = float(average_precision_score(y[cut:], points + max_points * proba))
    metrics = {"average_precision_on_later_30pct": later_ap,
               "later_30pct_ap_without_model": later_ap_without,
               "later_30pct_ap_with_model": later_ap_with}
    if baseline is not None and not (later_ap_with is not None
                                     and later_ap_with >= later_ap_without + MIN_AP_GAIN):
        shown = ("cannot be measured: the later verdicts lack one of the outcomes"
                 if later_ap_with is None else
                 f"{later_ap_with:.3f} with it against {later_ap_without:.3f} without")
        return _not_used(models_dir, f"{len(y)} verdicts ({n_pos} confirmed); not used: it does "
                         f"not rank the later 30 % of them at least {MIN_AP_GAIN} better than the "
                         f"rules do ({shown})", {"metrics": metrics})
    model = HistGradientBoostingClassifier(random_state=seed, max_iter=200).fit(x, y)
    meta = {
        "model": MODEL_NAME, "versions": scoring.versions(), "features": columns, "seed": seed,
        "verdicts": int(len(y)), "confirmed": n_pos,
        "training_window": {"start": str(data["created_at"].min()), "end": str(data["created_at"].max())},
        "metrics": metrics,
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
    """grain: one row per reason code: orders support was sent with that reason and has
    judged, and the share judged confirmed. The reasons are those on the order's first
    listing (ops.published_flags), not tonight's rescoring of it; verdicts on orders never
    sent (a sample of unflagged orders, for recall) say nothing about a rule's precision."""
    labels = labelled_orders(con)
    if labels.is_empty() or not warehouse.table_exists(con, "ops", "published_flags"):
        return pl.DataFrame(schema={"code": pl.String, "verdicts": pl.Int64, "precision": pl.Float64})
    # rows listed before published_flags kept reasons (a warehouse not scanned since, too)
    # fall back to the window's scores
    window = warehouse.table_exists(con, "intermediate", "order_scores")
    kept = warehouse.scalar(con, "select count(*) from information_schema.columns where table_schema = "
                            "'ops' and table_name = 'published_flags' and column_name = 'reason_codes'")
    scores = warehouse.query(
        con,
        f"select p.order_id, coalesce({'p.reason_codes' if kept else 'null'}, s.reason_codes) "
        "as reason_codes "
        "from ops.published_flags p left join "
        + ("intermediate.order_scores" if window else "marts.order_scores")
        + " s using (order_id)")
    return (
        scores.join(labels, on="order_id").explode("reason_codes").drop_nulls("reason_codes")
        .group_by(pl.col("reason_codes").alias("code"))
        .agg(pl.len().alias("verdicts"), pl.col("label").mean().round(4).alias("precision"))
        .sort("code")
    )


def record_rule_hits(con: duckdb.DuckDBPyConnection, run_date: str) -> int:
    """ops.rule_hits, grain: one row per (run_date, code): hits and flagged orders of
    tonight's export per reason code, listed (the rows of tonight's flagged_orders.csv with
    the code: tonight's flagged orders and earlier ones flagged late, as the report's rule
    table counts them), and precision among orders with verdicts, so rules can be followed
    night after night. A rerun of a night replaces its rows."""
    late = ("union all select unnest(reason_codes) as code from marts.late_flags"
            if warehouse.table_exists(con, "marts", "late_flags") else "")
    hits = warehouse.query(
        con,
        f"""
        with exported as (
            select code, count(*) as hits, count(*) filter (where risk_level <> 'low') as flagged
            from (select unnest(reason_codes) as code, risk_level from marts.order_scores)
            group by 1
        ),
        listed as (
            select code, count(*) as listed from (
                select unnest(reason_codes) as code from marts.order_scores where risk_level <> 'low'
                {late})
            group by 1
        )
        select code, coalesce(e.hits, 0) as hits, coalesce(e.flagged, 0) as flagged,
               coalesce(l.listed, 0) as listed
        from exported e full join listed l using (code)
        order by 1
        """,
    )
    precision = rule_precision(con)
    rows = hits.join(precision, on="code", how="left").select(
        pl.lit(run_date).alias("run_date"), "code", "hits", "flagged",
        pl.col("verdicts").fill_null(0), "precision", "listed",
    )
    con.execute(
        "create table if not exists ops.rule_hits (run_date varchar, code varchar, hits bigint, "
        "flagged bigint, verdicts bigint, precision double)"
    )
    # listed came later: earlier nights' rows keep null
    con.execute("alter table ops.rule_hits add column if not exists listed bigint")
    con.execute("delete from ops.rule_hits where run_date = $d", {"d": run_date})
    con.register("tonight_rule_hits", rows.to_arrow())
    try:
        con.execute("insert into ops.rule_hits by name select * from tonight_rule_hits")
    finally:
        con.unregister("tonight_rule_hits")
    return rows.height
