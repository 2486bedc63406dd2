"""A rule change tried on history matches what a full rescan with it produces."""

from __future__ import annotations

from importlib import resources

import duckdb
import polars as pl

from orderguard.backtest import run_backtest
from orderguard.rules import load_rules
from orderguard.scan import ScanOptions, run_scan


def stricter_rules(tmp_path):
    text = resources.files("orderguard").joinpath("rules.toml").read_text("utf-8")
    text = text.replace("flag_threshold = 0.6 ", "flag_threshold = 0.75 ", 1)
    assert "flag_threshold = 0.75" in text
    path = tmp_path / "stricter.toml"
    path.write_text(text, "utf-8")
    return path


def flagged_per_day(db) -> dict:
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute(
            "select created_at::date, count(*) filter (where risk_level <> 'low') "
            "from marts.order_scores group by 1 order by 1"
        ).fetchall()
    return dict(rows)


def test_a_stricter_threshold_backtest_matches_a_full_rescan_day_by_day(scanned_world, tmp_path):
    rules = stricter_rules(tmp_path)
    with duckdb.connect(str(scanned_world["db"]), read_only=True) as con:
        first, last = con.execute(
            "select min(created_at)::date, max(created_at)::date from marts.order_scores"
        ).fetchall()[0]
        table = run_backtest(con, load_rules(), load_rules(rules), first, last)
    live = flagged_per_day(scanned_world["db"])
    assert dict(zip(table["day"], table["flagged_live"], strict=True)) == live

    rescan_db = tmp_path / "rescan.duckdb"
    run_scan(ScanOptions(input_dir=scanned_world["input"], out_dir=tmp_path / "out", db_path=rescan_db,
                         models_dir=scanned_world["models"], rules_path=rules))
    assert dict(zip(table["day"], table["flagged_candidate"], strict=True)) == flagged_per_day(rescan_db)
    assert (table["flagged_candidate"] <= table["flagged_live"]).all()
    assert (table["both"] == table["flagged_candidate"]).all()
    assert table["orders"].sum() == pl.read_parquet(scanned_world["out"] / "order_scores.parquet").height


def test_a_version_that_adds_a_feature_keeps_the_stored_nights():
    """Upgrading to a version with one more feature must not throw away the nights a
    backtest replays: the new column is empty on them."""
    from orderguard.backtest import NightKeeper

    con = duckdb.connect()
    con.execute("create schema ops")
    tonight = {"is_tonight": [True], "risk_level": ["low"]}
    NightKeeper(con, "2026-10-01").add(pl.DataFrame({"order_id": ["O1"], "buyer_orders": [3], **tonight}))
    NightKeeper(con, "2026-10-02").add(pl.DataFrame(
        {"order_id": ["O2"], "buyer_orders": [1], "bulk_orders_at_shop": [12], **tonight}))
    rows = con.execute("select run_date, order_id, buyer_orders, bulk_orders_at_shop "
                       "from ops.feature_history order by run_date").fetchall()
    assert rows == [("2026-10-01", "O1", 3, None), ("2026-10-02", "O2", 1, 12)]


def test_precision_from_verdicts_counted_in_small_passes_equals_the_flagged_orders_verdicts(
        scanned_world, tmp_path):
    """Support's verdicts give each day's precision; scoring the stored nights a few hundred
    orders at a time (how a 10M-order window stays within memory) counts exactly what one
    pass over the period counts."""
    import shutil

    from orderguard import feedback

    db = tmp_path / "wh.duckdb"
    shutil.copy(scanned_world["db"], db)
    labels = pl.read_csv(scanned_world["labels"] / "orders.csv", infer_schema=False)
    with duckdb.connect(str(db)) as con:
        scores = con.sql("select order_id, created_at::date as day, risk_level <> 'low' as flagged "
                         "from marts.order_scores").pl()
    # verdicts on every 3rd order, flagged or not, as support would send back
    judged = scores.sort("order_id").gather_every(3).join(labels, on="order_id")
    judged = judged.with_columns(
        pl.when(pl.col("is_fraud") == "1").then(pl.lit("confirmed")).otherwise(pl.lit("false_positive"))
        .alias("verdict"))
    judged.select("order_id", "verdict").write_csv(tmp_path / "verdicts.csv")
    with duckdb.connect(str(db)) as con:
        feedback.load_verdicts(con, tmp_path / "verdicts.csv")
        first, last = scores["day"].min(), scores["day"].max()
        whole = run_backtest(con, load_rules(), load_rules(stricter_rules(tmp_path)), first, last,
                             batch_rows=10 ** 9)
        in_passes = run_backtest(con, load_rules(), load_rules(stricter_rules(tmp_path)), first, last,
                                 batch_rows=97)
    assert in_passes.equals(whole)
    expected = (
        judged.filter("flagged")
        .group_by("day")
        .agg((pl.col("verdict") == "confirmed").mean().round(4).alias("precision_live"))
    )
    got = whole.select("day", "precision_live").join(expected, on="day", how="left", suffix="_expected")
    assert got["precision_live"].null_count() < got.height  # the days with flagged verdicts
    assert (got["precision_live"].fill_null(-1).to_list()
            == got["precision_live_expected"].fill_null(-1).to_list())


def test_a_rule_on_a_misspelt_feature_is_refused_not_silently_off(scanned_world, tmp_path, capsys):
    """A typo in a rule's feature would switch the rule off without a word (a missing
    feature reads as never true): backtest and the scan's scoring refuse it, naming the
    nearest feature."""
    import shutil

    import pytest

    from orderguard import cli, detect
    from orderguard.rules import RuleConfigError

    text = resources.files("orderguard").joinpath("rules.toml").read_text("utf-8")
    typo = tmp_path / "typo.toml"
    typo.write_text(text.replace('feature = "device_accounts"', 'feature = "device_acounts"', 1), "utf-8")
    assert cli.main(["backtest", "--config", str(typo), "--from", "2026-10-01", "--to", "2026-10-30",
                     "--db", str(scanned_world["db"])]) == 2
    err = capsys.readouterr().err
    assert "rule SHARED_DEVICE: no feature 'device_acounts'" in err
    assert "did you mean 'device_accounts'" in err
    db = tmp_path / "wh.duckdb"
    shutil.copy(scanned_world["db"], db)
    nearest = "did you mean 'device_accounts'"
    with duckdb.connect(str(db)) as con, pytest.raises(RuleConfigError, match=nearest):
        detect.run_scoring_stage(con, load_rules(typo), tmp_path / "models", seed=7)
