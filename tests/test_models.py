"""Model artifacts: what a scan trusts and what it refuses."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from orderguard import scoring


def accounts(n: int = 400) -> pl.DataFrame:
    return pl.DataFrame({"account_id": [f"U{i}" for i in range(n)],
                         "n_orders": [i % 7 for i in range(n)],
                         "device_accounts": [1 + (i % 50 == 0) * 9 for i in range(n)]})


def test_a_trained_forest_is_saved_with_versions_features_window_seed_and_metrics(tmp_path):
    loaded = scoring.load_or_train_forest(accounts(), tmp_path, 3, {"training_window": "w"})
    assert loaded.action == "trained (no model yet)"
    meta = json.loads((tmp_path / "isolation_forest.meta.json").read_text("utf-8"))
    assert meta["versions"]["scikit-learn"] and meta["seed"] == 3 and meta["training_window"] == "w"
    assert meta["features"] == list(scoring.ACCOUNT_FEATURES)
    assert meta["metrics"]["anomaly_quantiles_on_training_sample"]
    again = scoring.load_or_train_forest(accounts(), tmp_path, 3, {})
    assert again.action == "loaded"


def test_a_model_pickled_by_another_scikit_learn_is_refused_and_retrained(tmp_path):
    scoring.load_or_train_forest(accounts(), tmp_path, 3, {})
    meta_path = tmp_path / "isolation_forest.meta.json"
    meta = json.loads(meta_path.read_text("utf-8"))
    meta["versions"]["scikit-learn"] = "0.24.2"
    meta_path.write_text(json.dumps(meta), "utf-8")
    loaded = scoring.load_or_train_forest(accounts(), tmp_path, 3, {})
    assert loaded.action.startswith("retrained (saved by scikit-learn 0.24.2")
    assert json.loads(meta_path.read_text("utf-8"))["versions"]["scikit-learn"] != "0.24.2"


def test_scores_are_higher_for_more_anomalous_accounts():
    frame = accounts()
    forest = scoring.AccountForest(n_estimators=50, random_state=1).fit(frame)
    scores = forest.score_samples(frame)
    odd = frame["device_accounts"].to_numpy() > 1
    assert scores[odd].mean() > scores[~odd].mean()


def test_scores_scored_in_batches_on_several_threads_equal_one_pass_to_the_last_bit():
    frame = accounts(3000)
    forest = scoring.AccountForest(n_estimators=50, random_state=1).fit(frame)
    whole = forest.score_samples(frame)
    forest.batch_rows = 700  # five batches, some running at the same time
    assert np.array_equal(forest.score_samples(frame, threads=3), whole)
    assert np.array_equal(forest.score_samples(frame, threads=1), whole)


def test_a_heavy_buyer_is_not_an_anomaly_but_a_crowded_device_is():
    # one side of each feature is suspicious: many orders is no evidence, many accounts
    # on one device is
    n = 400
    frame = pl.DataFrame({"account_id": [f"U{i}" for i in range(n)],
                          "n_orders": [60 if i < 4 else 1 + i % 3 for i in range(n)],
                          "device_accounts": [12 if 4 <= i < 8 else 1 for i in range(n)]})
    forest = scoring.AccountForest(n_estimators=100, random_state=1).fit(frame)
    scores = forest.score_samples(frame)
    heavy, crowded, ordinary = scores[:4], scores[4:8], scores[8:]
    assert heavy.max() <= ordinary.max()
    assert crowded.min() > ordinary.max()


def test_accounts_the_forest_cannot_tell_apart_share_one_rank():
    ranks = scoring.forest_rank(np.array([0.3, 0.1, 0.3, 0.5, 0.2]))
    assert ranks.tolist() == [0.5, 0.0, 0.5, 1.0, 0.25]
    assert scoring.forest_rank(np.ones(5)).tolist() == [0.0] * 5  # no points by table position


def test_a_model_saved_before_one_sided_features_is_retrained(tmp_path):
    scoring.load_or_train_forest(accounts(), tmp_path, 3, {})
    meta_path = tmp_path / "isolation_forest.meta.json"
    meta = json.loads(meta_path.read_text("utf-8"))
    del meta["directions"]
    meta_path.write_text(json.dumps(meta), "utf-8")
    loaded = scoring.load_or_train_forest(accounts(), tmp_path, 3, {})
    assert loaded.action == "retrained (feature directions changed)"


def test_forest_points_go_to_the_top_share_and_only_a_sliver_orders_everyone_else():
    ranks = pl.DataFrame({"forest_rank": [0.0, 0.5, 0.97, 0.99, 1.0]})
    points = ranks.select(scoring.forest_points(pl.col("forest_rank"), 1.0, 0.02, 0.05)).to_series()
    assert points.to_list() == pytest.approx([0.0, 0.025, 0.0485, 0.5495, 1.05])
    untied = ranks.select(scoring.forest_points(pl.col("forest_rank"), 1.0, 0.02)).to_series()
    assert untied.to_list() == pytest.approx([0.0, 0.0, 0.0, 0.5, 1.0])


def test_a_forest_an_older_version_left_in_the_shared_folder_is_named_not_loaded(tmp_path):
    """Versions before 3b7ddff kept every warehouse's forest in the project's models/: after
    the upgrade a warehouse elsewhere trains its own (every score moves a little, once), and
    the log and run.json say where the old one is instead of a bare 'no model yet'."""
    shared = tmp_path / "models"
    scoring.load_or_train_forest(accounts(), shared, 3, {"training_window": "old"})
    own = tmp_path / "nightly" / "warehouse.models"
    loaded = scoring.load_or_train_forest(accounts(), own, 3, {"training_window": "new"},
                                          earlier_folder=shared)
    assert loaded.action.startswith(f"trained (no model yet in {own}")
    assert str(shared) in loaded.action and "copy" in loaded.action
    assert loaded.meta["training_window"] == "new"  # trained here, the shared one untouched
    assert json.loads((shared / "isolation_forest.meta.json").read_text("utf-8"))["training_window"] == "old"
    first = scoring.load_or_train_forest(accounts(), tmp_path / "fresh", 3, {},
                                         earlier_folder=tmp_path / "none")
    assert first.action == "trained (no model yet)"


def test_the_shared_folder_is_named_only_for_a_warehouse_with_earlier_nights_elsewhere(tmp_path, monkeypatch):
    from orderguard import detect, warehouse

    monkeypatch.setenv("ORDERGUARD_ROOT", str(tmp_path / "project"))
    with warehouse.connect(tmp_path / "wh.duckdb") as con:
        assert detect.earlier_forest_folder(con, tmp_path / "wh.models") is None  # a new warehouse
        con.execute("create table ops.runs (run_date varchar)")
        con.execute("insert into ops.runs values ('2026-10-01')")
        assert detect.earlier_forest_folder(con, tmp_path / "wh.models") == tmp_path / "project" / "models"
        assert detect.earlier_forest_folder(con, tmp_path / "project" / "models") is None
