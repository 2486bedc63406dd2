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
