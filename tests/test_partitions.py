"""Partitioned intake: partitions validated apart (here on a local Dask cluster), loaded by
one central writer, scored exactly as the plain scan of the same data."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import polars as pl
import pytest

from orderguard import partitions, warehouse

OUTPUTS = ("order_scores.parquet", "flagged_orders.csv", "rings.csv", "flagged_accounts.csv",
           "quarantine.csv")




@pytest.fixture(scope="module")
def shop_partitions(small_world, tmp_path_factory) -> Path:
    night = tmp_path_factory.mktemp("partitioned") / "night"
    partitions.split_by_shop(small_world["input"], night)
    return night


@pytest.mark.flow
def test_a_partitioned_scan_on_a_local_dask_cluster_publishes_what_the_plain_scan_publishes(
        prefect_server, scanned_world, shop_partitions, tmp_path):
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from pipelines.partitioned_scan import PartitionedScanParameters, dask_task_runner, partitioned_scan

    params = PartitionedScanParameters(
        input_dir=str(shop_partitions), out_dir=str(tmp_path / "out"),
        db_path=str(tmp_path / "wh.duckdb"), models_dir=str(tmp_path / "models"),
    )
    # thread workers: every worker reports to the session's one Prefect API
    runner = dask_task_runner(n_workers=2, processes=False, threads_per_worker=1)
    run = partitioned_scan.with_options(task_runner=runner)(params)

    for name in OUTPUTS:
        assert (tmp_path / "out" / name).read_bytes() == (scanned_world["out"] / name).read_bytes(), name
    whole, parts = scanned_world["run"]["counts"], run["counts"]
    for table, c in parts.items():
        assert c["read"] == c["accepted"] + c["quarantined"] + c["merged"], table
        assert (c["accepted"], c["quarantined"]) == (whole[table]["accepted"], whole[table]["quarantined"])
    assert parts["orders"]["read"] == whole["orders"]["read"] and parts["orders"]["merged"] == 0
    assert parts["accounts"]["merged"] == whole["accounts"]["read"]  # every account twice, merged once
    assert set(run["raw"]["partitions"]) == {"shops-0", "shops-1"}
    assert run["problems"] == scanned_world["run"]["problems"]
    assert not list((tmp_path / "partitions").glob("*/*")), "partition Parquet is removed once loaded"

    with get_client(sync_client=True) as client:
        tasks = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run["flow_run_id"]])))
    states = {t.name: t.state_type.value for t in tasks}
    assert states["validate-shops-0"] == states["validate-shops-1"] == "COMPLETED", states


def test_an_order_repeated_in_a_later_partition_is_quarantined_under_that_partitions_file(
        small_world, tmp_path):
    source = small_world["input"]
    # the night's latest orders: each partition's clock (its latest order) accepts their times
    orders = pl.read_csv(source / "orders.csv", infer_schema=False).sort("created_at").tail(40)
    accounts = pl.read_csv(source / "accounts.csv", infer_schema=False)
    first, later = tmp_path / "a", tmp_path / "b"
    for folder in (first, later):
        folder.mkdir()
    orders.head(30).write_csv(first / "orders.csv")
    accounts.write_csv(first / "accounts.csv")
    # the later partition repeats order 3 of the first, has an amount that is no amount, and
    # changes account 5's phone
    broken = orders.tail(10).with_columns(
        pl.when(pl.int_range(pl.len()) == 0).then(pl.lit("abc")).otherwise("amount").alias("amount"))
    pl.concat([broken, orders.slice(2, 1)]).write_csv(later / "orders.csv")
    with (later / "orders.csv").open("a", encoding="utf-8") as f:  # and a record cut short
        f.write("E-CUT,S1\n")
    accounts.with_columns(
        pl.when(pl.int_range(pl.len()) == 4).then(pl.lit("13900000000")).otherwise("phone").alias("phone")
    ).write_csv(later / "accounts.csv")

    outs = [partitions.validate_partition(f, tmp_path / "out" / f.name, "run-1") for f in (first, later)]
    con = warehouse.connect(":memory:")
    counts = partitions.load_partitions(con, [o["out_dir"] for o in outs])

    assert counts["orders"] == {"read": 42, "accepted": 39, "quarantined": 3, "merged": 0}
    assert counts["accounts"] == {"read": 2 * accounts.height, "accepted": accounts.height,
                                  "quarantined": 1, "merged": accounts.height - 1}
    staged = warehouse.query(con, "select order_id, _file from staging.orders")
    assert staged["order_id"].n_unique() == staged.height == 39
    assert staged.filter(pl.col("order_id") == orders["order_id"][2])["_file"].to_list() == ["a/orders.csv"]
    quarantine = warehouse.query(con, "select * from ops.quarantine order by table_name, row_number")
    assert quarantine.select("run_id", "table_name", "file", "row_number", "column_name").rows() == [
        ("run-1", "accounts", "b/accounts.csv", 5, "account_id"),
        ("run-1", "orders", "b/orders.csv", 1, "amount"),
        ("run-1", "orders", "b/orders.csv", 11, "order_id"),
        ("run-1", "orders", "b/orders.csv", 12, "buyer_id"),  # the first field missing
    ]
    assert quarantine["reason"][2].endswith("repeats a/orders.csv row 3 of an earlier partition "
                                            "(the first occurrence is kept)")
    assert "differs from its row in a/accounts.csv row 5" in quarantine["reason"][0]
    manifest = json.loads((Path(outs[1]["out_dir"]) / partitions.MANIFEST).read_text("utf-8"))
    assert manifest["counts"]["orders"] == {"read": 12, "accepted": 10, "quarantined": 2}
    problems = partitions.combine_problems(partitions.read_manifests(o["out_dir"] for o in outs))
    shop = broken["shop_id"][0]
    assert [r for r in problems["shops_with_rejected_orders"] if r["shop_id"] == shop][0]["quarantined"] == 1
    assert problems["unreadable_records"] == {"b/orders.csv": 1}


def test_partitions_from_different_runs_are_refused(small_world, tmp_path):
    outs = [partitions.validate_partition(small_world["input"], tmp_path / n, n) for n in ("r1", "r2")]
    with pytest.raises(ValueError, match="different runs"):
        partitions.load_partitions(duckdb.connect(), [o["out_dir"] for o in outs])


def test_a_partitioned_nights_fingerprint_covers_its_partitions_files(tmp_path):
    """The guard against a cut-off export replacing a published night compares fingerprints:
    a partitioned night's files are in its partition folders, and count."""
    import hashlib

    from orderguard.scan import input_fingerprint

    night = tmp_path / "night"
    for part, text in (("shops-0", "order_id\nE1\n"), ("shops-1", "order_id\nE2\nE3\n")):
        (night / part).mkdir(parents=True)
        (night / part / "orders.csv").write_text(text, "utf-8")
    whole = input_fingerprint(night)
    assert whole != hashlib.sha256().hexdigest(), "not the hash of nothing"
    (night / "shops-1" / "orders.csv").write_text("order_id\nE2\n", "utf-8")  # cut off
    assert input_fingerprint(night) != whole
    # a plain export folder hashes as before: each file's name, then its bytes
    flat = tmp_path / "flat"
    flat.mkdir()
    (flat / "Orders.csv").write_bytes(b"order_id\nE1\n")
    (flat / "accounts.csv").write_bytes(b"account_id\nU1\n")
    before = hashlib.sha256()
    for name in ("Orders.csv", "accounts.csv"):  # in the order Path sorts them
        before.update(name.lower().encode())
        before.update((flat / name).read_bytes())
    assert input_fingerprint(flat) == before.hexdigest()
