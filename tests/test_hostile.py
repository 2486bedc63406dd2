"""One end-to-end scan of a hostile export: broken rows quarantined, nothing lost, and no
input text becomes a live formula, HTML or script in any published file."""

from __future__ import annotations

import json
import shutil

import polars as pl

from orderguard import publish
from orderguard.scan import ScanOptions, run_scan

FORMULA = '=HYPERLINK("http://evil.example","点我")'
SCRIPT = "<script>alert(1)</script>"


def test_a_hostile_export_is_scanned_whole_and_published_inert(small_world, tmp_path):
    src = tmp_path / "in"
    shutil.copytree(small_world["input"], src)
    orders = pl.read_csv(src / "orders.csv", infer_schema=False)
    labels = pl.read_csv(small_world["labels"] / "orders.csv", infer_schema=False)
    fake_shop = orders.join(labels, on="order_id").filter(pl.col("is_fraud") == "1")["shop_id"][0]
    hostile = orders.with_columns(
        # a shop whose id is a formula and receivers whose names and addresses are markup
        pl.when(pl.col("shop_id") == fake_shop).then(pl.lit(FORMULA)).otherwise(pl.col("shop_id"))
        .alias("shop_id"),
        pl.lit(SCRIPT).alias("receiver_name"),
        (pl.col("address") + pl.lit(SCRIPT)).alias("address"),
    )
    broken = hostile.head(4).with_columns(
        pl.Series("order_id", ["BAD1", "BAD2", "BAD3", hostile["order_id"][10]]),
        pl.Series("quantity", ["two", "1", "1", "1"]),
        pl.Series("amount", ["10", "¥-5", "10", "10"]),
        pl.Series("created_at", ["2026-10-02 10:00", "2026-10-02 10:00", "not a date", "2026-10-02 10:00"]),
    )
    huge = hostile.head(1).with_columns(pl.lit("BIG1").alias("order_id"),
                                        pl.lit("x" * 10_000_000).alias("address"))  # a 10 MB field
    pl.concat([hostile, broken, huge]).write_csv(src / "orders.csv")
    # an address with a comma nobody quoted: one field too many (the CSV reader cannot
    # split the record, so it is quarantined whole; the night goes on)
    unquoted = "BAD5," + ",".join(f"{v}" for v in orders.row(0)[1:]) + ",上海市,浦东新区\n"
    with (src / "orders.csv").open("a", encoding="utf-8") as f:
        f.write(unquoted)

    run_scan(ScanOptions(input_dir=src, out_dir=tmp_path / "out", db_path=tmp_path / "wh.duckdb",
                         models_dir=tmp_path / "models"))
    out = tmp_path / "out"
    run = json.loads((out / "run.json").read_text("utf-8"))
    counts = run["counts"]["orders"]
    assert counts["read"] == orders.height + 6
    assert counts["quarantined"] == 6 and counts["read"] == counts["accepted"] + counts["quarantined"]
    assert pl.read_parquet(out / "order_scores.parquet").height == counts["accepted"]
    quarantine = pl.read_csv(out / "quarantine.csv", infer_schema=False)
    assert quarantine.height == 6 and quarantine["reason"].str.len_chars().min() > 0
    last = quarantine.filter(pl.col("row_number") == str(counts["read"])).row(0, named=True)
    assert "more fields than the header's 24" in last["reason"]
    # the record's text holds its buyer's phone and address: masked like any personal value
    assert last["value"].startswith("BA****") and len(last["value"]) == 8, last["value"]
    published = (out / "quarantine.csv").read_text("utf-8-sig")
    personal = {k: v for k, v in orders.row(0, named=True).items() if k in publish.PII_COLUMNS and v}
    assert personal and not [v for v in personal.values() if v in published], personal
    assert run["problems"]["unreadable_records"] == {"orders.csv": 1}

    flagged = pl.read_csv(out / "flagged_orders.csv", infer_schema=False)
    assert (flagged["shop_id"] == "'" + FORMULA).any(), "the formula shop is flagged and neutralised"
    for name in ("flagged_orders.csv", "flagged_accounts.csv", "rings.csv", "quarantine.csv"):
        frame = pl.read_csv(out / name, infer_schema=False)
        for col in frame.columns:
            cells = frame[col].drop_nulls()
            assert not cells.str.contains(r"^[=+\-@\t\r]").any(), (name, col)
    report = (out / "report.html").read_text("utf-8")
    assert SCRIPT not in report  # escaped wherever input text is shown
    assert "Unreadable records</b> (orders.csv): 1 could not be split" in report


def test_a_shop_whose_rows_are_broken_is_named_and_the_rest_is_scanned(small_world, tmp_path):
    src = tmp_path / "in"
    shutil.copytree(small_world["input"], src)
    orders = pl.read_csv(src / "orders.csv", infer_schema=False)
    broken_shop = orders["shop_id"].value_counts(sort=True)["shop_id"][-1]
    orders.with_columns(
        pl.when(pl.col("shop_id") == broken_shop).then(pl.lit("n/a")).otherwise(pl.col("amount"))
        .alias("amount")
    ).write_csv(src / "orders.csv")
    run = run_scan(ScanOptions(input_dir=src, out_dir=tmp_path / "out", db_path=tmp_path / "wh.duckdb",
                               models_dir=tmp_path / "models"))
    assert run["problems"]["failed_shops"] == [broken_shop]
    broken_rows = orders.filter(pl.col("shop_id") == broken_shop).height
    assert run["counts"]["orders"]["quarantined"] == broken_rows
    assert run["summary"]["orders_scored"] == orders.height - broken_rows
    assert broken_shop in (tmp_path / "out" / "report.html").read_text("utf-8")


def test_a_blank_row_or_a_tiny_shop_s_one_bad_row_is_no_failed_shop():
    from orderguard import warehouse
    from orderguard.scan import NO_SHOP, shop_problems

    con = warehouse.connect(":memory:")
    rows = ([("S1", i) for i in range(1, 11)] + [("S2", 11)] + [(" ", 12)]
            + [("S3", i) for i in range(13, 19)])
    con.execute("create table raw.orders (shop_id varchar, _row bigint)")
    con.executemany("insert into raw.orders values (?, ?)", rows)
    con.execute("create table ops.quarantine (run_id varchar, table_name varchar, row_number bigint)")
    bad = [1, 11, 12, 13, 14, 15, 16]  # S1 1 of 10, S2 its only order, the blank row, S3 4 of 6
    con.executemany("insert into ops.quarantine values ('r1', 'orders', ?)", [(b,) for b in bad])
    problems = shop_problems(con, "r1")
    assert problems["failed_shops"] == ["S3"]
    assert {r["shop_id"]: r["quarantined"] for r in problems["shops_with_rejected_orders"]} == {
        "S3": 4, "S1": 1, "S2": 1, NO_SHOP: 1}
