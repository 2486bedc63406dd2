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
