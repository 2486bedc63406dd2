"""Scores: a graph-aware isolation forest per account, combined with rule points.

One direction everywhere: higher = more suspicious.
"""

from __future__ import annotations

import json
import logging
import platform
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import joblib
import numpy as np
import polars as pl
import sklearn
from sklearn.ensemble import IsolationForest

from orderguard import __version__

log = logging.getLogger(__name__)

# Per-account features that already carry graph context (rings, identifier rarity).
ACCOUNT_FEATURES = (
    "n_orders", "n_shops", "n_products", "cancel_refund_share", "avg_quantity",
    "fast_pay_share", "fast_delivery_share", "instant_5star_share", "exact_price_share",
    "age_at_first_order_days", "top_product_share", "device_accounts", "payer_accounts",
    "phone_accounts", "ip_accounts", "address_accounts", "shared_rarity_sum",
    "siblings_within_10min", "referral_depth", "downline_size", "ring_size", "ring_strength",
    "ring_density", "invite_loop",
)  # fmt: skip
# One score direction (higher = more suspicious) also inside the forest: for each feature only
# one tail is suspicious. Many orders, shops or products and an old account are no evidence
# (a loyal heavy buyer is rare, not suspect), so for these only the LOW side may isolate an
# account; for every other feature (sharing, speed, concentration, rings) only the HIGH side.
# The benign side is clipped at the training median before the forest sees it.
LOW_IS_SUSPICIOUS = frozenset({"n_orders", "n_shops", "n_products", "age_at_first_order_days"})
DIRECTIONS = {name: "low" if name in LOW_IS_SUSPICIOUS else "high" for name in ACCOUNT_FEATURES}

MODEL_NAME = "isolation_forest"


class AccountForest:
    """IsolationForest over account features; `score_samples` is higher = more anomalous.

    Each feature is one-sided (see DIRECTIONS): values on its benign side of the training
    median count as the median, so only the suspicious tail can isolate an account.
    Fitted on at most `max_fit_rows` accounts (a sample) and applied in batches, so the
    cost stays flat as the platform grows."""

    def __init__(self, n_estimators: int = 200, max_fit_rows: int = 200_000,
                 random_state: int = 7, batch_rows: int = 500_000):
        self.n_estimators = n_estimators
        self.max_fit_rows = max_fit_rows
        self.random_state = random_state
        self.batch_rows = batch_rows

    @staticmethod
    def matrix(frame: pl.DataFrame) -> np.ndarray:
        cols = []
        for name in ACCOUNT_FEATURES:
            if name in frame.columns:
                col = frame[name].cast(pl.Float64).fill_null(0.0)
            else:
                col = pl.Series([0.0] * frame.height)
            values = col.to_numpy()
            # counts are heavy tailed: compare them on a log scale
            cols.append(np.log1p(np.clip(values, 0, None)))
        return np.column_stack(cols) if cols else np.zeros((frame.height, 0))

    def one_sided(self, x: np.ndarray) -> np.ndarray:
        """Clip each column's benign side at the training median (`medians_`), in place
        (three temporaries of a 2M-account matrix cost ~2 s of page faults here)."""
        for j, name in enumerate(ACCOUNT_FEATURES):
            clip = np.minimum if DIRECTIONS[name] == "low" else np.maximum
            clip(x[:, j], self.medians_[j], out=x[:, j])
        return x

    def fit(self, frame: pl.DataFrame) -> AccountForest:
        rng = np.random.default_rng(self.random_state)
        if frame.height > self.max_fit_rows:  # the sample's rows only, not the whole matrix
            frame = frame[np.sort(rng.choice(frame.height, self.max_fit_rows, replace=False))]
        x = self.matrix(frame)
        self.medians_ = np.median(x, axis=0) if len(x) else np.zeros(x.shape[1])
        x = self.one_sided(x)
        self.model_ = IsolationForest(
            n_estimators=self.n_estimators, random_state=self.random_state, n_jobs=1
        ).fit(x)
        self.n_fit_rows_ = len(x)
        self.features_ = list(ACCOUNT_FEATURES)
        fitted = -self.model_.score_samples(x)
        # what "anomalous" meant on the training sample, for the model's .meta.json
        self.fit_anomaly_quantiles_ = {
            str(q): round(float(np.quantile(fitted, q)), 6) for q in (0.5, 0.9, 0.98, 0.99, 0.999)
        }
        return self

    def score_samples(self, frame: pl.DataFrame, threads: int = 1) -> np.ndarray:
        """Anomaly per row, batch by batch on `threads` threads (the trees' traversal runs
        without the GIL). Each batch sums its trees in one fixed order, so the result does
        not depend on the threads; sklearn's own n_jobs would add the trees in whatever order
        they finish and move the last bits from run to run."""
        x = self.one_sided(self.matrix(frame))
        out = np.empty(len(x))

        def score_batch(start: int) -> None:
            chunk = x[start : start + self.batch_rows]
            out[start : start + self.batch_rows] = -self.model_.score_samples(chunk)

        with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
            list(pool.map(score_batch, range(0, len(x), self.batch_rows)))
        return out


def versions() -> dict[str, str]:
    return {
        "orderguard": __version__,
        "scikit-learn": sklearn.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def _compatible(saved: dict[str, str]) -> bool:
    """A pickle is only trusted by the same scikit-learn minor version and the same features."""
    ours = sklearn.__version__.split(".")[:2]
    theirs = str(saved.get("scikit-learn", "")).split(".")[:2]
    return ours == theirs


@dataclass
class LoadedModel:
    forest: AccountForest
    path: Path
    meta: dict
    action: str  # "loaded", "trained (no model yet)", "retrained (...)"


def save_forest(forest: AccountForest, models_dir: Path, meta_extra: dict) -> Path:
    models_dir.mkdir(parents=True, exist_ok=True)
    path = models_dir / f"{MODEL_NAME}.joblib"
    tmp = path.with_suffix(".joblib.tmp")
    joblib.dump(forest, tmp)
    tmp.replace(path)
    meta = {
        "model": MODEL_NAME,
        "versions": versions(),
        "features": list(ACCOUNT_FEATURES),
        "directions": DIRECTIONS,
        "seed": forest.random_state,
        "n_estimators": forest.n_estimators,
        "n_fit_rows": forest.n_fit_rows_,
        "metrics": {"anomaly_quantiles_on_training_sample": forest.fit_anomaly_quantiles_},
        **meta_extra,
    }
    meta_path = models_dir / f"{MODEL_NAME}.meta.json"
    meta_path.write_text(json.dumps(meta, indent=2, sort_keys=True, default=str), "utf-8")
    return path


def load_or_train_forest(accounts: pl.DataFrame, models_dir: Path, seed: int,
                         meta_extra: dict, earlier_folder: Path | None = None) -> LoadedModel:
    """`earlier_folder`: where an older version may have saved this warehouse's forest (see
    detect.earlier_forest_folder). It is only named, never loaded: that folder was shared by
    every warehouse, so its forest may be another's."""
    path = models_dir / f"{MODEL_NAME}.joblib"
    meta_path = models_dir / f"{MODEL_NAME}.meta.json"
    reason = "no model yet"
    if (earlier_folder is not None and not path.exists()
            and (earlier_folder / f"{MODEL_NAME}.joblib").exists()):
        reason = (f"no model yet in {models_dir}, though the warehouse has earlier nights; "
                  f"{earlier_folder} holds a forest, where versions before 3b7ddff (2026-12-05) saved "
                  "every warehouse's (this one's or another's): to keep scoring with it, copy "
                  f"its {MODEL_NAME}.joblib and .meta.json into {models_dir} and rescan the night")
    if path.exists() and meta_path.exists():
        meta = json.loads(meta_path.read_text("utf-8"))
        if not _compatible(meta.get("versions", {})):
            reason = (f"saved by scikit-learn {meta.get('versions', {}).get('scikit-learn')}, "
                      f"running {sklearn.__version__}")
        elif meta.get("features") != list(ACCOUNT_FEATURES):
            reason = "feature list changed"
        elif meta.get("directions") != DIRECTIONS:
            reason = "feature directions changed"
        else:
            forest = joblib.load(path)
            return LoadedModel(forest, path, meta, "loaded")
    log.warning("isolation forest: %s; training a new one", reason)
    forest = AccountForest(random_state=seed).fit(accounts)
    saved = save_forest(forest, models_dir, meta_extra)
    meta = json.loads(meta_path.read_text("utf-8"))
    action = (f"trained ({reason})" if reason.startswith("no model yet")
              else f"retrained ({reason})")
    return LoadedModel(forest, saved, meta, action)


def forest_rank(anomaly: np.ndarray) -> np.ndarray:
    """Each account's anomaly as a rank in 0..1 (robust to the forest's score scale): the
    share of accounts strictly less anomalous. Equal anomalies share a rank, so accounts the
    forest cannot tell apart never get points by their position in the table."""
    if len(anomaly) == 0:
        return anomaly
    less = np.searchsorted(np.sort(anomaly), anomaly, side="left")
    return less / max(len(anomaly) - 1, 1)


def forest_points(rank: pl.Expr, max_points: float, top_share: float, tie_points: float = 0.0) -> pl.Expr:
    """Up to `max_points` for the most anomalous accounts (the top `top_share` by rank), plus
    at most `tie_points` for every account by its rank: far too little to flag anything, it
    orders the orders the rules leave tied by the forest's graded opinion."""
    top = max_points * ((rank - (1 - top_share)) / top_share).clip(0.0, 1.0)
    return (top + tie_points * rank).fill_null(0.0)


def combine(points: pl.Expr, scale: float) -> pl.Expr:
    """Points -> score in 0..1; monotone, so rankings follow the evidence."""
    return (1.0 - (-points / scale).exp()).clip(0.0, 1.0)


def risk_level(score: pl.Expr, flag: float, high: float) -> pl.Expr:
    return (
        pl.when(score >= high).then(pl.lit("high"))
        .when(score >= flag).then(pl.lit("medium"))
        .otherwise(pl.lit("low"))
    )
