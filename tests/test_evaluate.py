import numpy as np
import polars as pl

from orderguard.evaluate import ablation_scores
from orderguard.scoring import combine


def test_ablations_take_graded_rule_points_from_the_scan_and_ring_points_as_declared():
    scores = pl.DataFrame({
        "reason_codes": [["RING_BRUSHING", "THIN_HISTORY"], ["THIN_HISTORY"], []],
        "rule_points": [3.5 + 0.1, 0.05, 0.0],  # THIN_HISTORY is graded: 0.1 and 0.05
        "forest_points": [0.5, 0.0, 0.01],
        "supervised_points": [0.0, 0.0, 0.0],
    })
    parts = ablation_scores(scores)

    def score(points):
        return pl.select(combine(pl.lit(pl.Series(points)), 2.5)).to_series().to_numpy()

    np.testing.assert_allclose(parts["rules_only"], score([0.1, 0.05, 0.0]))
    np.testing.assert_allclose(parts["rules_graph"], score([3.6, 0.05, 0.0]))
    np.testing.assert_allclose(parts["rules_graph_forest"], score([4.1, 0.05, 0.01]))


def test_evaluate_with_a_wrong_folder_names_the_missing_files_and_exits_2(tmp_path, capsys):
    from orderguard import cli

    code = cli.main(["evaluate", "--scan-out", str(tmp_path / "out"), "--labels", str(tmp_path / "labels")])
    assert code == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "out" / "order_scores.parquet") in err
    assert str(tmp_path / "labels" / "orders.csv") in err



def test_honest_crowds_count_the_customers_support_would_call(scanned_world, tmp_path):
    """An honest customer with a flagged order is a false positive support acts on, even when
    the account is not in flagged_accounts.csv: evaluate counts both."""
    import shutil

    from orderguard.evaluate import evaluate_outputs

    out = tmp_path / "out"
    shutil.copytree(scanned_world["out"] / "latest", out)
    before = evaluate_outputs(out, scanned_world["labels"])["honest_crowds"]["office"]
    labels = pl.read_csv(scanned_world["labels"] / "accounts.csv", infer_schema=False)
    flagged = pl.read_csv(out / "flagged_orders.csv", infer_schema=False)
    listed = set(flagged["buyer_id"]) | set(pl.read_csv(out / "flagged_accounts.csv")["account_id"])
    office_worker = labels.filter((pl.col("crowd") == "office") & ~pl.col("account_id").is_in(listed))
    # support is handed one more honest order, bought by an office worker nobody flagged
    honest = pl.read_csv(scanned_world["labels"] / "orders.csv", infer_schema=False).filter(
        (pl.col("is_fraud") == "0") & ~pl.col("order_id").is_in(flagged["order_id"].implode()))
    extra = flagged.head(1).with_columns(pl.lit(honest["order_id"][0]).alias("order_id"),
                                         pl.lit(office_worker["account_id"][0]).alias("buyer_id"))
    pl.concat([flagged, extra]).write_csv(out / "flagged_orders.csv")
    after = evaluate_outputs(out, scanned_world["labels"])["honest_crowds"]["office"]
    assert after["flagged_share"] == before["flagged_share"]  # the account list is unchanged
    grown = after["flagged_order_buyer_share"] - before["flagged_order_buyer_share"]
    assert round(grown * after["accounts"]) == 1


def test_run_json_names_the_export_so_evaluate_finds_it_from_any_folder(tmp_path, monkeypatch):
    """A scan run as `--input in/2026-10-05` recorded that relative path: evaluate run from
    another folder found no commissions file and dropped the commission figure silently."""
    from pathlib import Path

    from orderguard.scan import ScanOptions, new_run

    (tmp_path / "in").mkdir()
    monkeypatch.chdir(tmp_path)
    run = new_run(ScanOptions(input_dir=Path("in"), out_dir=Path("out"), db_path=Path("wh.duckdb")))
    assert run["input_dir"] == str(tmp_path / "in")
