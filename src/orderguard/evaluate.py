"""Detection quality against labels: what a risk lead asks before trusting the scores.

Reads a scan's published files and a labels folder (from `orderguard generate`, or any
folder with the same label files) and measures: average precision and ROC-AUC over all
orders, precision/recall at a review budget K, recall per fraud kind, account precision and
recall, ring recall and purity, honest crowds flagged, commission flagged before it settles,
and ablations (rules without graph, + graph, + forest, + supervised).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import polars as pl
from sklearn.metrics import average_precision_score, roc_auc_score

from orderguard.rules import load_rules
from orderguard.scoring import combine

log = logging.getLogger(__name__)

ABLATIONS = ("rules_only", "rules_graph", "rules_graph_forest", "full")


def _safe(metric, y, s) -> float | None:
    y = np.asarray(y)
    if y.min() == y.max():
        return None
    return round(float(metric(y, s)), 4)


def ranking_metrics(y: np.ndarray, score: np.ndarray, k: int) -> dict:
    order = np.lexsort((np.arange(len(score)), -score))
    top = y[order[:k]]
    positives = int(y.sum())
    return {
        "average_precision": _safe(average_precision_score, y, score),
        "roc_auc": _safe(roc_auc_score, y, score),
        "k": k,
        "precision_at_k": round(float(top.mean()), 4) if k else None,
        "recall_at_k": round(float(top.sum() / positives), 4) if positives else None,
    }


def ablation_scores(scores: pl.DataFrame, rules_path: str | None = None) -> dict[str, np.ndarray]:
    """Recompute each order's score from its parts: ring (graph) rules, other rules, forest,
    supervised model. Ring rules count their declared points; the other rules the rest of
    the scan's `rule_points` when the scores carry it."""
    ruleset = load_rules(rules_path)
    scale = ruleset.scoring.get("scale", 2.5)
    graph_codes = {c for c, r in ruleset.rules.items() if r.family == "ring"}
    points = {c: r.points for c, r in ruleset.rules.items()}
    graph_points = pl.col("reason_codes").list.eval(
        pl.when(pl.element().is_in(list(graph_codes)))
        .then(pl.element().replace_strict(points, default=0.0)).otherwise(0.0)
    ).list.sum()
    # graded rules award more than their declared points: take the scan's own rule points
    all_points = (
        pl.col("rule_points") if "rule_points" in scores.columns
        else pl.col("reason_codes").list.eval(pl.element().replace_strict(points, default=0.0)).list.sum()
    )
    parts = scores.select(
        (all_points - graph_points).alias("plain"),
        graph_points.alias("graph"),
        pl.col("forest_points").fill_null(0.0),
        pl.col("supervised_points").fill_null(0.0),
    )
    plain, graph = parts["plain"], parts["graph"]
    forest, sup = parts["forest_points"], parts["supervised_points"]
    totals = {
        "rules_only": plain,
        "rules_graph": plain + graph,
        "rules_graph_forest": plain + graph + forest,
        "full": plain + graph + forest + sup,
    }
    return {
        name: pl.select(combine(pl.lit(series), scale)).to_series().to_numpy()
        for name, series in totals.items()
    }


def ring_quality(reported: pl.DataFrame, true_rings: pl.DataFrame, fraud_ids: set[str]) -> dict:
    """A true ring is found when >= half its members sit in one reported ring; purity is the
    share of a reported ring's members that are fraudulent."""
    rep_sets = [set(m.split(";")) for m in reported["members"].to_list()] if reported.height else []
    found, found_honest_looking, n_honest_looking = 0, 0, 0
    per_kind: dict[str, list[int]] = {}
    for row in true_rings.iter_rows(named=True):
        members = set(str(row["members"]).split(";"))
        hit = any(len(members & r) >= 0.5 * len(members) for r in rep_sets)
        found += hit
        per_kind.setdefault(row["kind"], [0, 0])
        per_kind[row["kind"]][0] += hit
        per_kind[row["kind"]][1] += 1
        if int(row.get("looks_honest") or 0):
            n_honest_looking += 1
            found_honest_looking += hit
    purities = [len(r & fraud_ids) / len(r) for r in rep_sets if r]
    return {
        "true_rings": true_rings.height,
        "ring_recall": round(found / true_rings.height, 4) if true_rings.height else None,
        "ring_recall_looks_honest": (
            round(found_honest_looking / n_honest_looking, 4) if n_honest_looking else None
        ),
        "ring_recall_by_kind": {k: round(v[0] / v[1], 4) for k, v in sorted(per_kind.items())},
        "reported_rings": len(rep_sets),
        "mean_ring_purity": round(float(np.mean(purities)), 4) if purities else None,
    }


SCAN_FILES = ("order_scores.parquet", "run.json", "flagged_accounts.csv", "rings.csv",
              "flagged_orders.csv")
LABEL_FILES = ("orders.csv", "accounts.csv", "rings.csv")


class MissingFilesError(FileNotFoundError):
    pass


def missing_files(scan_out: Path, labels_dir: Path) -> list[str]:
    """The files evaluate_outputs reads that are not there (a wrong --scan-out or --labels)."""
    wanted = [scan_out / f for f in SCAN_FILES] + [labels_dir / f for f in LABEL_FILES]
    return [str(f) for f in wanted if not f.is_file()]


def evaluate_outputs(scan_out: Path, labels_dir: Path, budget: int | None = None) -> dict:
    if missing := missing_files(scan_out, labels_dir):
        raise MissingFilesError(
            "not found: " + ", ".join(missing) + " (--scan-out is a scan's --out folder, "
            "--labels the labels folder `orderguard generate` wrote)")
    scores = pl.read_parquet(scan_out / "order_scores.parquet")
    run = json.loads((scan_out / "run.json").read_text("utf-8"))
    order_labels = pl.read_csv(labels_dir / "orders.csv", infer_schema=False).with_columns(
        pl.col("is_fraud").cast(pl.Int8)
    )
    account_labels = pl.read_csv(labels_dir / "accounts.csv", infer_schema=False).with_columns(
        pl.col("is_fraud").cast(pl.Int8)
    )
    ring_labels = pl.read_csv(labels_dir / "rings.csv", infer_schema=False)
    joined = scores.join(order_labels, on="order_id", how="inner").sort("order_id")
    y = joined["is_fraud"].to_numpy()
    k = budget or int(y.sum())
    flagged = joined["risk_level"] != "low"
    result: dict = {"orders": joined.height, "fake_orders": int(y.sum())}
    result["order"] = ranking_metrics(y, joined["score"].to_numpy(), k)
    tp = int((flagged & (joined["is_fraud"] == 1)).sum())
    result["order"]["flagged"] = int(flagged.sum())
    result["order"]["flagged_precision"] = round(tp / max(int(flagged.sum()), 1), 4)
    result["order"]["flagged_recall"] = round(tp / max(int(y.sum()), 1), 4)
    honest = joined.filter(pl.col("is_fraud") == 0)
    result["order"]["honest_flagged_per_10k"] = round(
        10_000 * int((honest["risk_level"] != "low").sum()) / max(honest.height, 1), 2
    )
    result["recall_by_kind"] = {
        kind: round(float((g["risk_level"] != "low").mean()), 4)
        for (kind,), g in joined.filter(pl.col("is_fraud") == 1).group_by(["kind"], maintain_order=True)
    }
    result["recall_by_kind"] = dict(sorted(result["recall_by_kind"].items()))

    result["listed"] = listed_orders(scan_out / "flagged_orders.csv", order_labels)

    # accounts: flagged_accounts.csv against account labels
    flagged_accounts = pl.read_csv(scan_out / "flagged_accounts.csv", infer_schema=False)
    flagged_ids = set(flagged_accounts["account_id"].to_list())
    fraud_ids = set(account_labels.filter(pl.col("is_fraud") == 1)["account_id"].to_list())
    person_fraud = fraud_ids  # fake-shipping buyers are honest; their shop is not an account
    hits = len(flagged_ids & person_fraud)
    result["account"] = {
        "flagged": len(flagged_ids),
        "precision": round(hits / max(len(flagged_ids), 1), 4),
        "recall": round(hits / max(len(person_fraud), 1), 4),
    }
    crowds = account_labels.filter(pl.col("is_fraud") == 0)
    ring_members = set()
    rings = pl.read_csv(scan_out / "rings.csv", infer_schema=False)
    for m in rings["members"].to_list():
        ring_members.update(m.split(";"))
    # an honest customer support calls about is a false positive too, even when the account
    # itself is not listed: the buyers of tonight's flagged honest orders (a fake-shipping
    # shop's customers are honest, but their orders are rightly flagged)
    flagged_buyers = set(
        pl.read_csv(scan_out / "flagged_orders.csv", columns=["order_id", "buyer_id"], infer_schema=False)
        .join(order_labels.filter(pl.col("is_fraud") == 0), on="order_id")["buyer_id"].to_list())
    result["honest_crowds"] = {
        crowd: {
            "accounts": g.height,
            "flagged_share": round(sum(a in flagged_ids for a in g["account_id"]) / g.height, 5),
            "in_ring_share": round(sum(a in ring_members for a in g["account_id"]) / g.height, 5),
            "flagged_order_buyer_share": round(
                sum(a in flagged_buyers for a in g["account_id"]) / g.height, 5),
        }
        for (crowd,), g in crowds.group_by(["crowd"], maintain_order=True)
        if crowd
    }
    result["honest_crowds"] = dict(sorted(result["honest_crowds"].items()))
    shops = set(ring_labels.filter(pl.col("kind") == "fake_shipping")["members"].to_list())
    result["rings"] = ring_quality(rings, ring_labels, fraud_ids | shops)
    result["commission"] = commission_flagged_before_settling(joined, Path(run["input_dir"]))
    result["ablations"] = {
        name: ranking_metrics(y, s, k) for name, s in ablation_scores(joined).items()
    }
    return result


def listed_orders(flagged_csv: Path, order_labels: pl.DataFrame) -> dict:
    """What support was sent tonight, flagged_orders.csv, against the labels: tonight's
    flagged orders plus the late flags (earlier nights' orders reaching the threshold only
    tonight), which order_scores.parquet, holding tonight's export, does not have."""
    listed = pl.read_csv(flagged_csv, columns=["order_id", "flagged_late"], infer_schema=False).join(
        order_labels.select("order_id", "is_fraud"), on="order_id", how="left")
    late = listed.filter(pl.col("flagged_late").str.to_lowercase() == "true")

    def precision(rows: pl.DataFrame) -> float | None:  # None: nothing listed to be right about
        return round(float(rows["is_fraud"].fill_null(0).mean()), 4) if rows.height else None

    return {
        "orders": listed.height,
        "precision": precision(listed),
        "late": late.height,
        "late_precision": precision(late),
        "unlabelled": int(listed["is_fraud"].null_count()),
    }


def commission_flagged_before_settling(joined: pl.DataFrame, input_dir: Path) -> dict | None:
    """Of the commission on self-referral orders that had not settled at scan time, the share
    whose order was flagged (so support can freeze it before it is paid)."""
    files = list(input_dir.glob("commissions.*"))
    if not files:
        if not input_dir.is_dir():  # moved, or named relative to where an older scan ran
            log.warning("the scanned export %s is not here: the commission figure is left out", input_dir)
        return None
    path = files[0]
    commissions = (
        pl.read_parquet(path) if path.suffix == ".parquet" else pl.read_csv(path, infer_schema=False)
    ).with_columns(pl.col("amount").cast(pl.Float64, strict=False))
    selfref = joined.filter(pl.col("kind") == "self_referral").select("order_id", "risk_level")
    pending = commissions.filter(pl.col("status") == "pending").join(selfref, on="order_id")
    total = float(pending["amount"].sum() or 0)
    caught = float(pending.filter(pl.col("risk_level") != "low")["amount"].sum() or 0)
    return {
        "self_referral_pending_commission": round(total, 2),
        "flagged_before_settling": round(caught, 2),
        "share": round(caught / total, 4) if total else None,
    }
