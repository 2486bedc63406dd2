from datetime import datetime, timedelta

import numpy as np
import polars as pl

from orderguard import feedback


def test_supervised_layer_trains_when_an_optional_column_is_empty_everywhere(tmp_path):
    # an export without paid_at: pay_delay_s is null on every order
    n = 300
    rng = np.random.default_rng(0)
    label = (np.arange(n) % 5 == 0).astype(np.int8)
    features = pl.DataFrame({
        "order_id": [f"O{i}" for i in range(n)],
        "created_at": [datetime(2015, 1, 1) + timedelta(hours=i) for i in range(n)],
        "account_age_s": np.where(label == 1, 30, 86400 + rng.integers(0, 1000, n)),
        "pay_delay_s": pl.Series([None] * n, dtype=pl.Int64),
    })
    labels = pl.DataFrame({"order_id": features["order_id"], "label": label})
    model, result = feedback.train_supervised(features, labels, tmp_path, 200, 7)
    assert model is not None and result.active
    assert result.meta["features"] == ["account_age_s"]
    points = feedback.supervised_points(features, model, result.meta["features"], 3.0)
    fraud = points.filter(pl.Series(label == 1))["supervised_points"].mean()
    assert fraud > points.filter(pl.Series(label == 0))["supervised_points"].mean()


def test_verdicts_on_the_first_half_of_a_month_raise_average_precision_on_the_second_half(
        scanned_world, tmp_path):
    """Support's verdicts on the first half of a generated month train the supervised layer;
    measured on the second half only, the score ranks fake orders better than without."""
    import shutil

    import duckdb
    from sklearn.metrics import average_precision_score

    from orderguard.scan import ScanOptions, run_scan

    labels = pl.read_csv(scanned_world["labels"] / "orders.csv", infer_schema=False)
    before = pl.read_parquet(scanned_world["out"] / "order_scores.parquet")
    with duckdb.connect(str(scanned_world["db"]), read_only=True) as con:
        created = con.sql("select order_id, created_at from marts.order_scores").pl()
    middle = created["created_at"].sort()[created.height // 2]
    first_half = created.filter(pl.col("created_at") < middle).join(labels, on="order_id")
    verdicts = first_half.select(
        "order_id",
        pl.when(pl.col("is_fraud") == "1").then(pl.lit("confirmed")).otherwise(pl.lit("false_positive"))
        .alias("verdict"),
        pl.lit("support review").alias("note"),
    )
    verdict_file = tmp_path / "verdicts.csv"
    verdicts.write_csv(verdict_file)

    db = tmp_path / "wh.duckdb"
    shutil.copy(scanned_world["db"], db)
    with duckdb.connect(str(db)) as con:
        feedback.load_verdicts(con, verdict_file)
    run = run_scan(ScanOptions(input_dir=scanned_world["input"], out_dir=tmp_path / "out", db_path=db,
                               models_dir=tmp_path / "models", run_date=None))
    assert run["scoring"]["supervised"].startswith("trained on")
    meta = (tmp_path / "models" / "supervised.meta.json").read_text("utf-8")
    assert "average_precision_on_later_30pct" in meta and "scikit-learn" in meta
    after = pl.read_parquet(tmp_path / "out" / "order_scores.parquet")

    second = created.filter(pl.col("created_at") >= middle).join(labels, on="order_id")
    y = second.sort("order_id")["is_fraud"].cast(pl.Int8).to_numpy()

    def ap(scores: pl.DataFrame) -> float:
        s = second.select("order_id").join(scores, on="order_id").sort("order_id")["score"].to_numpy()
        return average_precision_score(y, s)

    assert ap(after) > ap(before)
