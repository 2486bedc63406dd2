"""Detection quality on two REAL labelled data sets: the full scan, unsupervised, then with verdicts.

    .venv/bin/python benchmarks/bench_real.py [--data-dir ../shared/data/real]
        [--sets fraud_data yelpchi] [--out benchmarks/results/real.json] [--keep DIR]

The data sets are read where they lie (default ``../shared/data/real`` beside the repository;
its README gives sources and caveats) and never copied into the repository. Each is mapped
into the data contract in a temporary folder with ONLY the columns it really has, scanned by
``orderguard.scan.run_scan`` (plain functions, no Prefect, a fresh warehouse and models
folder) with NO labels, and the published ``order_scores.parquet`` / ``flagged_accounts.csv``
are scored against the labels: ROC-AUC, average precision and precision at K (K = number of
positives), at order and at account level, for the full score and each ablation
(``evaluate.ablation_scores``: rules only, + graph, + forest), beside simple baselines.

Mapping (what fills each contract column):

Fraud_Data (fraud-ecommerce-partial/Fraud_Data.csv; the truncated last line is dropped)
    orders:   order_id = "O" + user_id (one order per user); buyer_id = user_id;
              created_at = purchase_time (GMT, written with a Z offset: the scan converts
              it to Shanghai time like every other offset; minutes only, no seconds);
              amount = purchase_value (USD, put in the amount column unconverted);
              device_id = device_id.
    accounts: account_id = user_id; registered_at = signup_time (GMT, Z); device_id.
    Neutral constants: shop_id "S1" (one shop), product_id "P1" (one product: source and
    browser are channels, not products), quantity 1, status "completed".
    Not mapped (no contract column): source, browser, sex, age. No ip, phone, address,
    payer, referrals, commissions or products table: the file has none.

YelpChi (yelpchi/metadata.gz: user_id prod_id rating label date; rating and date are None)
    orders:   one order per review: order_id = "R" + line number; buyer_id = user_id;
              product_id = shop_id = "B" + prod_id. A prod_id is a business (a hotel or
              restaurant), i.e. the merchant whose ratings a review farm inflates, so it is
              the shop, and the shop sells one thing: being reviewed.
    accounts: account_id = user_id.
    Neutral constants (the copy has no dates, ratings, prices or identifiers): created_at
    2012-01-01 12:00 for every order, registered_at 2011-01-01 12:00 for every account
    (a year before, so no new-account signal fires for anyone), quantity 1, amount 0,
    status "completed". review_rating is NOT filled (the copy blanks it).

Verdict path (Fraud_Data): after the unsupervised scan, the orders of the earliest 30 % of the
period (by purchase time: the first 30 % of the span from the first to the last purchase,
never a random split) get a verdict from their label (confirmed / false_positive). The
verdict file is loaded with ``feedback.load_verdicts`` into the scan's warehouse and the same
input is scanned again (same warehouse and models folder: the isolation forest is reused, so
the only change is the supervised layer that ``detect.run_scoring_stage`` trains once
``min_verdicts`` exist). Quality is measured on the later 70 % only, unsupervised beside with
verdicts.

Metrics: order scores can tie in blocks (orders with the same rules and the same forest
rank). ``average_precision`` is scikit-learn's, which scores a tied block at the precision at
its end (pessimistic); ``average_precision_random_ties`` is the mean AP over 10 random orders of
tied scores (what a reviewer working down a list in arbitrary order within a tie sees). P@K
breaks ties by a fixed random shuffle of the rows (seed 0), never by id or file order.
Baselines, computed the same way: Fraud_Data's two hand rules (device shared by 2+ users
in the file, plus purchase at most 60 s after signup, one point each); YelpChi: the user's
review count alone (fewer reviews = more suspicious). Fraud_Data also reports
``signal_ceiling`` under ``references_using_labels``: NOT a detector but each group's fraud
rate read from the labels, for groups by (purchase within a minute of signup, users on the
device, other users on the device who did so); no score built from those facts can beat it;
and ``label_trained_all_columns``: NOT a detector but a gradient-boosted model fitted on the
labels (5-fold cross-validated) with every column of the file, mapped or not (seconds from
signup to purchase, value, age, hour and weekday of signup and purchase, source, browser,
sex) plus those device facts. The verdict path reports the same model fitted on the earliest
30 % and scored on the later 70 % (``label_trained_all_columns_early_to_later``): the most
any supervised layer could learn from these verdicts. YelpChi's reference
``review_count_then_business_spam_rate`` breaks the review count's ties by each business's
spam rate read from the labels: the most a business-level signal could add; and
``label_trained_user_structure``, NOT a detector but the gradient-boosted model fitted on the
labels with the graph's structure around each reviewer (review count, mean log size of the
businesses reviewed, mean and max share of one-review users at them, users sharing 2+
businesses with them), 5-fold cross-validated with whole businesses held out: how far a
label-free structural signal could in principle go beyond the review count.
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import shutil
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import polars as pl
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.model_selection import GroupKFold, KFold, cross_val_predict

from orderguard import feedback, scoring, warehouse
from orderguard.evaluate import ablation_scores, ranking_metrics
from orderguard.scan import ScanOptions, run_scan

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "real"
FRAUD_FILE = Path("fraud-ecommerce-partial") / "Fraud_Data.csv"
YELP_FILE = Path("yelpchi") / "metadata.gz"
ABLATIONS = ("rules_only", "rules_graph", "rules_graph_forest")
VERDICT_SHARE = 0.3
TIE_DRAWS = 10


# --------------------------------------------------------------------------- mapping


def load_fraud_data(data_dir: Path) -> dict:
    """Fraud_Data -> contract tables and labels (see the module docstring)."""
    path = data_dir / FRAUD_FILE
    raw = pl.read_csv(path, infer_schema=False)
    complete = raw.filter(pl.col("class").is_not_null() & pl.col("age").is_not_null())
    dropped = raw.height - complete.height
    if dropped > 1:
        raise ValueError(f"{path}: {dropped} incomplete rows (expected only the truncated last one)")
    fmt = "%m/%d/%y %H:%M"
    frame = complete.with_columns(
        pl.col("signup_time").str.strptime(pl.Datetime, fmt),
        pl.col("purchase_time").str.strptime(pl.Datetime, fmt),
    )
    gmt = "%Y-%m-%dT%H:%MZ"  # minutes only, as in the file; Z = GMT
    orders = frame.select(
        ("O" + pl.col("user_id")).alias("order_id"),
        pl.lit("S1").alias("shop_id"),
        pl.col("user_id").alias("buyer_id"),
        pl.lit("P1").alias("product_id"),
        pl.lit(1).alias("quantity"),
        pl.col("purchase_value").alias("amount"),
        pl.col("purchase_time").dt.strftime(gmt).alias("created_at"),
        pl.lit("completed").alias("status"),
        pl.col("device_id"),
    )
    accounts = frame.select(
        pl.col("user_id").alias("account_id"),
        pl.col("signup_time").dt.strftime(gmt).alias("registered_at"),
        pl.col("device_id"),
    )
    truth = frame.select(
        ("O" + pl.col("user_id")).alias("order_id"),
        pl.col("user_id").alias("account_id"),
        pl.col("class").cast(pl.Int8).alias("label"),
        pl.col("purchase_time"),
        pl.col("signup_time"),
        pl.col("device_id"),
    )
    # every column of the file as a number, mapped or not: only for the label-trained reference
    columns = frame.select(
        ("O" + pl.col("user_id")).alias("order_id"),
        (pl.col("purchase_time") - pl.col("signup_time")).dt.total_seconds().alias("seconds_to_purchase"),
        pl.col("purchase_value").cast(pl.Float64),
        pl.col("age").cast(pl.Float64),
        *[pl.col(c).dt.hour().alias(f"{c}_hour") for c in ("signup_time", "purchase_time")],
        *[pl.col(c).dt.weekday().alias(f"{c}_weekday") for c in ("signup_time", "purchase_time")],
        *[pl.col(c).cast(pl.Categorical).to_physical().alias(c) for c in ("source", "browser", "sex")],
    )
    return {"orders": orders, "accounts": accounts, "truth": truth, "dropped_rows": dropped,
            "file_columns": columns}


def load_yelpchi(data_dir: Path) -> dict:
    """YelpChi -> contract tables and labels (see the module docstring)."""
    path = data_dir / YELP_FILE
    with gzip.open(path, "rt", encoding="ascii") as fh:
        rows = [line.split() for line in fh if line.strip()]
    frame = pl.DataFrame(
        rows, schema=["user_id", "prod_id", "rating", "label", "date"], orient="row"
    ).with_row_index("line", offset=1)
    if not (frame["rating"] == "None").all() or not (frame["date"] == "None").all():
        raise ValueError(f"{path}: expected rating and date to be None on every line")
    orders = frame.select(
        ("R" + pl.col("line").cast(pl.String)).alias("order_id"),
        ("B" + pl.col("prod_id")).alias("shop_id"),
        pl.col("user_id").alias("buyer_id"),
        ("B" + pl.col("prod_id")).alias("product_id"),
        pl.lit(1).alias("quantity"),
        pl.lit(0).alias("amount"),
        pl.lit("2012-01-01 12:00:00").alias("created_at"),
        pl.lit("completed").alias("status"),
    )
    accounts = frame.select(pl.col("user_id").alias("account_id")).unique(maintain_order=True).with_columns(
        pl.lit("2011-01-01 12:00:00").alias("registered_at")
    )
    truth = frame.select(
        ("R" + pl.col("line").cast(pl.String)).alias("order_id"),
        pl.col("user_id").alias("account_id"),
        (pl.col("label") == "-1").cast(pl.Int8).alias("label"),  # -1 = filtered (spam)
    )
    return {"orders": orders, "accounts": accounts, "truth": truth, "dropped_rows": 0}


def write_contract(folder: Path, data: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    data["orders"].write_csv(folder / "orders.csv")
    data["accounts"].write_csv(folder / "accounts.csv")


# --------------------------------------------------------------------------- metrics


def ap_random_ties(y: np.ndarray, score: np.ndarray, draws: int = TIE_DRAWS) -> float | None:
    """Mean average precision when tied scores are ordered at random."""
    if y.min() == y.max():
        return None
    rng = np.random.default_rng(0)
    values = []
    for _ in range(draws):
        order = np.lexsort((rng.random(len(y)), -score))
        hits = y[order]
        precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
        values.append(precision[hits == 1].mean())
    return round(float(np.mean(values)), 4)


def metrics(y: np.ndarray, score: np.ndarray) -> dict:
    """ROC-AUC, AP (scikit-learn and random ties), P@K with K = positives; rows are expected
    in a fixed random order (see shuffle_rows) so ties at K are not broken by id."""
    y = np.asarray(y, dtype=np.int8)
    score = np.asarray(score, dtype=np.float64)
    m = ranking_metrics(y, score, int(y.sum()))
    m["average_precision_random_ties"] = ap_random_ties(y, score)
    m["rows"], m["positives"] = int(len(y)), int(y.sum())
    return m


def shuffle_rows(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.sample(fraction=1.0, shuffle=True, seed=0)


def score_table(out: Path, truth: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """grain: one row per order (scores, each ablation, label) and one per account."""
    scores = pl.read_parquet(out / "order_scores.parquet")
    parts = ablation_scores(scores)
    scores = scores.with_columns(pl.Series(name, parts[name]) for name in ABLATIONS)
    orders = truth.join(scores, on="order_id", how="left")
    missing = orders["score"].null_count()
    if missing:
        raise RuntimeError(f"{missing} orders have no score (quarantined?)")
    flagged = pl.read_csv(out / "flagged_accounts.csv", infer_schema=False).select(
        "account_id", pl.col("score").cast(pl.Float64).alias("flagged_score")
    )
    accounts = (
        orders.group_by("account_id")
        .agg(pl.col("label").max(), pl.col("score").max(), *[pl.col(a).max() for a in ABLATIONS])
        .join(flagged, on="account_id", how="left")
        .with_columns(pl.max_horizontal("score", pl.col("flagged_score").fill_null(0.0)).alias("score"))
        .sort("account_id")
    )
    return shuffle_rows(orders.sort("order_id")), shuffle_rows(accounts)


def label_trained(train: pl.DataFrame, test: pl.DataFrame | None = None) -> np.ndarray:
    """NOT a detector: a gradient-boosted model fitted on the labels (every column but
    order_id and label), scored on `test`, or 5-fold cross-validated when there is none."""
    def x(frame: pl.DataFrame) -> np.ndarray:
        return frame.drop("order_id", "label").cast(pl.Float64).to_numpy()

    model = HistGradientBoostingClassifier(max_iter=100, learning_rate=0.05, max_depth=3, random_state=0)
    y = train["label"].to_numpy()
    if test is None:
        folds = KFold(5, shuffle=True, random_state=0)
        return cross_val_predict(model, x(train), y, cv=folds, method="predict_proba")[:, 1]
    return model.fit(x(train), y).predict_proba(x(test))[:, 1]


def user_structure(reviews: pl.DataFrame) -> pl.DataFrame:
    """grain: one row per review (order_id). What the user x business graph alone says about
    the reviewer: review count, how big the businesses they review are, how many of those
    businesses' reviewers are one-review users, and how many other users share 2+ businesses
    with them."""
    r = reviews.with_columns(pl.len().over("account_id").alias("user_reviews"),
                             pl.len().over("shop_id").alias("business_reviews"))
    r = r.with_columns((pl.col("user_reviews") == 1).cast(pl.Float64).mean().over("shop_id")
                       .alias("business_one_review_share"))
    edges = r.select("account_id", "shop_id")
    shared = (edges.join(edges, on="shop_id").filter(pl.col("account_id") != pl.col("account_id_right"))
              .group_by("account_id", "account_id_right").len().filter(pl.col("len") >= 2)
              .group_by("account_id")
              .agg(pl.len().alias("co_reviewers"), pl.col("len").max().alias("most_shared")))
    return (
        r.with_columns(
            pl.col("business_reviews").cast(pl.Float64).log().mean().over("account_id").alias("mean_log_business"),
            pl.col("business_one_review_share").mean().over("account_id").alias("mean_one_review_share"),
            pl.col("business_one_review_share").max().over("account_id").alias("max_one_review_share"),
        )
        .join(shared, on="account_id", how="left", maintain_order="left")
        .select("order_id", "shop_id", "label", "user_reviews", "mean_log_business",
                "mean_one_review_share", "max_one_review_share",
                pl.col("co_reviewers").fill_null(0), pl.col("most_shared").fill_null(0))
    )


def label_trained_by_group(frame: pl.DataFrame, group: str) -> np.ndarray:
    """NOT a detector: the same gradient-boosted model, 5-fold cross-validated with whole
    groups (businesses) held out, so it cannot learn any one group's own label rate."""
    x = frame.drop("order_id", "label", group).cast(pl.Float64).to_numpy()
    model = HistGradientBoostingClassifier(max_iter=100, learning_rate=0.05, max_depth=3, random_state=0)
    return cross_val_predict(model, x, frame["label"].to_numpy(), groups=frame[group].to_numpy(),
                             cv=GroupKFold(5), method="predict_proba")[:, 1]


def level_report(frame: pl.DataFrame, baselines: dict[str, pl.Expr],
                 references: dict[str, pl.Expr] | None = None) -> dict:
    y = frame["label"].to_numpy()
    out = {"scan": metrics(y, frame["score"].to_numpy())}
    out["ablations"] = {a: metrics(y, frame[a].to_numpy()) for a in ABLATIONS}
    out["baselines"] = {
        name: metrics(y, frame.select(expr).to_series().to_numpy()) for name, expr in baselines.items()
    }
    if references:
        out["references_using_labels"] = {
            name: metrics(y, frame.select(expr).to_series().to_numpy()) for name, expr in references.items()
        }
    return out


# --------------------------------------------------------------------------- scans


def scan(folder: Path, work: Path, run_id: str, tag: str = "out") -> tuple[dict, Path, float]:
    out = work / tag
    started = time.perf_counter()
    run = run_scan(
        ScanOptions(input_dir=folder, out_dir=out, db_path=work / "warehouse.duckdb",
                    models_dir=work / "models", run_id=run_id)
    )
    return run, out, round(time.perf_counter() - started, 1)


def run_summary(run: dict, seconds: float) -> dict:
    return {
        "seconds": seconds,
        "counts": run["counts"],
        "rings": run["graphs"],
        "scoring": {k: run["scoring"][k] for k in ("model_action", "window_orders_flagged", "supervised")},
        "summary": run["publish"],
    }


def bench_fraud_data(data_dir: Path, work: Path) -> dict:
    data = load_fraud_data(data_dir)
    folder = work / "input"
    write_contract(folder, data)
    run, out, seconds = scan(folder, work, "real-fraud-data-1")
    orders, accounts = score_table(out, data["truth"])
    # the simple baselines, from the file itself
    truth = data["truth"].with_columns(
        pl.len().over("device_id").alias("device_users"),
        ((pl.col("purchase_time") - pl.col("signup_time")).dt.total_seconds() <= 60).alias("within_a_minute"),
    )
    truth = truth.with_columns(
        (pl.col("within_a_minute").cast(pl.Int32).sum().over("device_id")
         - pl.col("within_a_minute").cast(pl.Int32)).alias("others_within_a_minute")
    ).with_columns(
        # NOT a detector: each group's fraud rate, read from the labels. The best any score
        # built only from these three facts can do (ties within a group count as ties)
        pl.col("label").cast(pl.Float64).mean()
        .over("within_a_minute", "device_users", "others_within_a_minute").alias("signal_ceiling")
    )
    rules = truth.select(
        "order_id", "signal_ceiling",
        ((pl.col("device_users") >= 2).cast(pl.Int8) + pl.col("within_a_minute").cast(pl.Int8))
        .alias("hand_rules"),
        (pl.col("device_users") >= 2).cast(pl.Int8).alias("shared_device_only"),
        pl.col("within_a_minute").cast(pl.Int8).alias("within_a_minute_only"),
    )
    # NOT a detector either: what a model trained on the labels gets from every column of the
    # file (mapped or not) plus the three device facts; the ceiling for any score from them
    known = truth.select(
        "order_id", "label", "device_users", "others_within_a_minute", "within_a_minute"
    ).join(data["file_columns"], on="order_id")
    rules = rules.with_columns(pl.Series("label_trained_all_columns", label_trained(known)))
    orders = orders.join(rules, on="order_id", how="left", maintain_order="left")
    accounts = accounts.join(
        orders.select("account_id", "hand_rules", "shared_device_only", "within_a_minute_only",
                      "signal_ceiling", "label_trained_all_columns"),
        on="account_id", how="left", maintain_order="left",
    )
    baselines = {b: pl.col(b) for b in ("hand_rules", "shared_device_only", "within_a_minute_only")}
    ceiling = {c: pl.col(c) for c in ("signal_ceiling", "label_trained_all_columns")}
    result = {
        "file": str(FRAUD_FILE),
        "dropped_rows": data["dropped_rows"],
        "order": level_report(orders, baselines, ceiling),
        "account": level_report(accounts, baselines, ceiling),
        "scan": run_summary(run, seconds),
    }
    result["verdicts"] = verdict_path(data, folder, work, orders, known)
    return result


def verdict_path(data: dict, folder: Path, work: Path, unsupervised: pl.DataFrame,
                 known: pl.DataFrame) -> dict:
    """Verdicts from the earliest 30 % of the period train the supervised layer; quality is
    measured on the later 70 % only."""
    truth = data["truth"]
    start, end = truth["purchase_time"].min(), truth["purchase_time"].max()
    cut = start + (end - start) * VERDICT_SHARE
    early = truth.filter(pl.col("purchase_time") < cut)
    verdicts = early.select(
        "order_id",
        pl.when(pl.col("label") == 1).then(pl.lit("confirmed")).otherwise(pl.lit("false_positive"))
        .alias("verdict"),
        pl.lit("bench_real: label of an order in the earliest 30 % of the period").alias("note"),
    )
    path = work / "verdicts.csv"
    verdicts.write_csv(path)
    with warehouse.connect(work / "warehouse.duckdb") as con:
        loaded = feedback.load_verdicts(con, path)
    run, out, seconds = scan(folder, work, "real-fraud-data-2", "out-verdicts")
    supervised, _ = score_table(out, truth)
    later_ids = truth.filter(pl.col("purchase_time") >= cut).select("order_id")
    before = unsupervised.join(later_ids, on="order_id", how="semi", maintain_order="left")
    after = supervised.join(later_ids, on="order_id", how="semi", maintain_order="left")
    after = before.select("order_id").join(after, on="order_id", how="left", maintain_order="left")
    y = before["label"].to_numpy()
    # the ceiling for verdicts: a model fitted on the earliest 30 % with every column of the file
    early_known = known.join(early.select("order_id"), on="order_id", how="semi")
    later_known = before.select("order_id").join(known, on="order_id", how="left", maintain_order="left")
    trained = label_trained(early_known, later_known)
    result = {
        "cut": str(cut),
        "period": [str(start), str(end)],
        "verdicts_loaded": loaded["stored"],
        "verdicts_confirmed": int(early["label"].sum()),
        "later_orders": before.height,
        "later_positives": int(y.sum()),
        "later": {
            "unsupervised": metrics(y, before["score"].to_numpy()),
            "with_verdicts": metrics(y, after["score"].to_numpy()),
            "hand_rules": metrics(y, before["hand_rules"].to_numpy()),
            "signal_ceiling_uses_labels": metrics(y, before["signal_ceiling"].to_numpy()),
            "label_trained_all_columns_early_to_later": metrics(y, trained),
        },
        "scan": run_summary(run, seconds),
    }
    meta_path = work / "models" / f"{feedback.MODEL_NAME}.meta.json"
    if meta_path.exists():
        meta = json.loads(meta_path.read_text("utf-8"))
        keys = ("verdicts", "confirmed", "training_window", "metrics")
        result["supervised_model"] = {k: meta.get(k) for k in keys}
    return result


def bench_yelpchi(data_dir: Path, work: Path) -> dict:
    data = load_yelpchi(data_dir)
    folder = work / "input"
    write_contract(folder, data)
    run, out, seconds = scan(folder, work, "real-yelpchi-1")
    orders, accounts = score_table(out, data["truth"])
    reviews = data["truth"].group_by("account_id").agg(pl.len().alias("user_reviews"))
    orders = orders.join(reviews, on="account_id", how="left", maintain_order="left")
    accounts = accounts.join(reviews, on="account_id", how="left", maintain_order="left")
    baselines = {"review_count": -pl.col("user_reviews").cast(pl.Float64)}
    # NOT a detector: the review count, with ties broken by each business's spam rate read
    # from the labels (the most a business-level signal could add to it)
    business = data["orders"].select("order_id", "shop_id").join(data["truth"], on="order_id")
    rate = business.group_by("shop_id").agg(pl.col("label").cast(pl.Float64).mean().alias("business_rate"))
    orders = orders.join(business.join(rate, on="shop_id").select("order_id", "business_rate"),
                         on="order_id", how="left", maintain_order="left")
    # NOT a detector: what a model fitted on the labels gets from the graph's structure
    # around each reviewer (businesses held out): the room a label-free structural signal has
    structure = user_structure(business.select("order_id", "shop_id", "account_id", "label"))
    fitted = pl.Series("structure_fit", label_trained_by_group(structure, "shop_id"))
    orders = orders.join(structure.select("order_id", fitted), on="order_id", how="left",
                         maintain_order="left")
    references = {"review_count_then_business_spam_rate":
                  -pl.col("user_reviews").cast(pl.Float64) + pl.col("business_rate"),
                  "label_trained_user_structure": pl.col("structure_fit")}
    return {
        "file": str(YELP_FILE),
        "order": level_report(orders, baselines, references),
        "account": level_report(accounts, baselines),
        "scan": run_summary(run, seconds),
    }


BENCHES = {"fraud_data": bench_fraud_data, "yelpchi": bench_yelpchi}


# --------------------------------------------------------------------------- report


def row(name: str, m: dict) -> str:
    ap = m["average_precision"]
    return (
        f"  {name:<26} ROC-AUC {m['roc_auc']:.3f}  AP {ap:.3f} "
        f"(random ties {m['average_precision_random_ties']:.3f})  P@K {m['precision_at_k']:.3f}"
    )


def print_result(name: str, r: dict) -> None:
    for level in ("order", "account"):
        rep = r[level]
        print(f"{name} / {level} (K = {rep['scan']['k']} of {rep['scan']['rows']})")
        print(row("scan", rep["scan"]))
        for a, m in rep["ablations"].items():
            print(row(a, m))
        for b, m in rep["baselines"].items():
            print(row(f"baseline {b}", m))
        for b, m in rep.get("references_using_labels", {}).items():
            print(row(f"(labels) {b}", m))
    if "verdicts" in r:
        v = r["verdicts"]
        print(f"{name} / later 70 % ({v['later_orders']} orders after {v['cut']}; "
              f"{v['verdicts_loaded']} verdicts before)")
        for k, m in v["later"].items():
            print(row(k, m))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--sets", nargs="+", choices=sorted(BENCHES), default=list(BENCHES))
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "real.json")
    parser.add_argument("--keep", type=Path, default=None,
                        help="keep the mapped inputs, warehouses and scan outputs in this folder")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    results: dict = {
        "data_dir": str(args.data_dir.resolve()),
        "generated_at": datetime.now().isoformat(timespec="seconds"),
        "versions": scoring.versions(),
        "metric_notes": "average_precision: scikit-learn (a tied block counts at its end); "
        "average_precision_random_ties: mean over 10 random orders of tied scores; P@K: K = "
        "positives, ties broken by a fixed random row order; account score = max(order scores, "
        "flagged_accounts score), ablations = max of the account's order ablation scores",
    }
    root = Path(tempfile.mkdtemp(prefix="bench-real-")) if args.keep is None else args.keep
    try:
        for name in args.sets:
            work = root / name
            if work.exists():
                shutil.rmtree(work)  # a fresh warehouse and models folder every time
            work.mkdir(parents=True)
            started = time.perf_counter()
            results[name] = BENCHES[name](args.data_dir, work)
            results[name]["seconds"] = round(time.perf_counter() - started, 1)
            print_result(name, results[name])
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, default=str), "utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
