"""Nights in sequence: history, lookback windows, reruns (issue 7)."""

from __future__ import annotations

import io
import json
from datetime import date, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from orderguard.generate import generate_to_folders
from orderguard.history import QuietNightError
from orderguard.scan import ScanOptions, run_scan

OUTPUTS = ("order_scores.parquet", "flagged_orders.csv", "flagged_accounts.csv", "rings.csv")


@pytest.fixture(scope="session")
def nightly_world(tmp_path_factory):
    root = tmp_path_factory.mktemp("nights")
    generate_to_folders(root / "exports", root / "labels", accounts=2500, seed=5, preset="default",
                        days=8, split_days=True)
    nights = sorted(p.name for p in (root / "exports").iterdir() if p.is_dir())
    return {"root": root, "nights": nights, "labels": root / "labels"}


def scan_night(world, night: str, db: Path, out: Path, models: Path, **extra):
    return run_scan(ScanOptions(input_dir=world["root"] / "exports" / night, out_dir=out, db_path=db,
                                models_dir=models, run_date=night, **extra))


def reported_members(out: Path) -> list[set[str]]:
    rings = pl.read_csv(out / "rings.csv", infer_schema=False)
    return [set(m.split(";")) for m in rings["members"]]


@pytest.fixture(scope="session")
def scanned_nights(nightly_world, tmp_path_factory):
    root = tmp_path_factory.mktemp("scanned-nights")
    db, out, models = root / "wh.duckdb", root / "out", root / "models"
    runs = [scan_night(nightly_world, n, db, out, models) for n in nightly_world["nights"]]
    last_night = {name: (out / name).read_bytes() for name in OUTPUTS}
    return {"db": db, "out": out, "models": models, "runs": runs, "last_night": last_night}


def test_each_night_publishes_only_its_own_orders_scored_against_the_history(nightly_world, scanned_nights):
    last = nightly_world["nights"][-1]
    export = pl.read_csv(nightly_world["root"] / "exports" / last / "orders.csv", infer_schema=False)
    scores = pl.read_parquet(scanned_nights["out"] / "order_scores.parquet")
    assert sorted(scores["order_id"]) == sorted(export["order_id"])
    run = scanned_nights["runs"][-1]
    assert run["window"]["window_orders"] > export.height  # earlier nights are in the window


def test_a_ring_split_across_nights_is_found_only_with_the_history(nightly_world, scanned_nights, tmp_path):
    labels = pl.read_csv(nightly_world["labels"] / "rings.csv", infer_schema=False)
    with_history = reported_members(scanned_nights["out"])
    alone = tmp_path / "alone"
    scan_night(nightly_world, nightly_world["nights"][-1], tmp_path / "wh.duckdb", alone,
               scanned_nights["models"])
    without_history = reported_members(alone)

    def found(members, reported):
        return any(len(members & r) >= 0.5 * len(members) for r in reported)

    persons = labels.filter(pl.col("kind").is_in(["brushing", "self_referral"]))
    rings = [set(m.split(";")) for m in persons["members"]]
    with_count = sum(found(m, with_history) for m in rings)
    alone_count = sum(found(m, without_history) for m in rings)
    assert with_count > alone_count, (with_count, alone_count)


def test_rescanning_the_previous_night_then_the_last_gives_identical_last_night_results(
        nightly_world, scanned_nights, tmp_path):
    import shutil

    # on copies: the other tests read the nights as first scanned
    db, out, models = tmp_path / "wh.duckdb", tmp_path / "out", scanned_nights["models"]
    shutil.copy(scanned_nights["db"], db)
    shutil.copytree(scanned_nights["out"], out, symlinks=True)
    *_, previous, last = nightly_world["nights"]
    scan_night(nightly_world, previous, db, out, models)
    scan_night(nightly_world, last, db, out, models)
    for name in OUTPUTS:
        assert (out / name).read_bytes() == scanned_nights["last_night"][name], name
    import duckdb

    with duckdb.connect(str(db), read_only=True) as con:
        nights = con.execute("select run_date, count(*) from ops.runs group by 1 order by 1").fetchall()
    assert [n for n, _ in nights] == nightly_world["nights"] and all(c == 1 for _, c in nights)


def test_rescanning_an_earlier_night_sees_no_account_registered_after_it(
        nightly_world, scanned_nights, tmp_path):
    """Rescanning night 3 after night 8: the accounts of nights 4-8 did not exist on night 3
    and are in none of its rings or flagged accounts."""
    import shutil

    db = tmp_path / "wh.duckdb"
    shutil.copy(scanned_nights["db"], db)
    night = nightly_world["nights"][2]
    scan_night(nightly_world, night, db, tmp_path / "out", scanned_nights["models"])
    registered = pl.concat([
        pl.read_csv(nightly_world["root"] / "exports" / n / "accounts.csv", infer_schema=False)
        .select("account_id", pl.col("registered_at").str.slice(0, 10))
        for n in nightly_world["nights"]]).unique("account_id")
    later = set(registered.filter(pl.col("registered_at") > night)["account_id"])
    assert later, "the world registers accounts after the rescanned night"
    flagged = pl.read_csv(tmp_path / "out" / "nights" / night / "flagged_accounts.csv", infer_schema=False)
    members = {m for ms in pl.read_csv(tmp_path / "out" / "nights" / night / "rings.csv",
                                      infer_schema=False)["members"] for m in ms.split(";")}
    assert later.isdisjoint(flagged["account_id"]) and later.isdisjoint(members)


def test_a_night_far_smaller_than_usual_fails_loudly(nightly_world, scanned_nights, tmp_path):
    import shutil

    small = tmp_path / "small"
    shutil.copytree(nightly_world["root"] / "exports" / nightly_world["nights"][-1], small)
    orders = pl.read_csv(small / "orders.csv", infer_schema=False)
    orders.head(5).write_csv(small / "orders.csv")
    db = tmp_path / "wh.duckdb"
    shutil.copy(scanned_nights["db"], db)
    with pytest.raises(QuietNightError, match="far fewer than the usual"):
        run_scan(ScanOptions(input_dir=small, out_dir=tmp_path / "out", db_path=db,
                             models_dir=scanned_nights["models"], run_date="2026-12-01"))
    assert not (tmp_path / "out" / "order_scores.parquet").exists()


def test_an_export_cut_short_loses_the_nights_new_orders_and_is_refused(nightly_world, scanned_nights,
                                                                       tmp_path):
    """A file still being copied keeps the older orders' updates (they come first) and
    loses most of the night's new orders: the row count alone passed it as a whole night."""
    import shutil

    night = nightly_world["nights"][-1]
    cut = tmp_path / "cut"
    shutil.copytree(nightly_world["root"] / "exports" / night, cut)
    orders = pl.read_csv(cut / "orders.csv", infer_schema=False)
    new = pl.col("created_at").str.slice(0, 10) == night
    assert orders.filter(~new).height >= 0.2 * orders.height, "updates alone pass the row count"
    pl.concat([orders.filter(~new), orders.filter(new).head(orders.filter(new).height // 25)]).write_csv(
        cut / "orders.csv")
    db = tmp_path / "wh.duckdb"
    shutil.copy(scanned_nights["db"], db)
    with pytest.raises(QuietNightError, match=f"orders created on {night}, far fewer than the usual"):
        run_scan(ScanOptions(input_dir=cut, out_dir=tmp_path / "out", db_path=db,
                             models_dir=scanned_nights["models"], run_date=night))
    assert not (tmp_path / "out" / "order_scores.parquet").exists()


def test_a_night_whose_orders_all_fail_says_why_keeps_its_rejects_and_remembers_nothing(
        nightly_world, scanned_nights, tmp_path):
    """A broken export (every status unreadable) is refused: the message says what was wrong
    most often and where every rejected row is; none of the night's accounts become known,
    so a later night's orders by them are still checked against its own accounts file."""
    import shutil

    import duckdb

    broken = tmp_path / "broken"
    shutil.copytree(nightly_world["root"] / "exports" / nightly_world["nights"][-1], broken)
    orders = pl.read_csv(broken / "orders.csv", infer_schema=False)
    orders.with_columns(pl.lit("true").alias("status")).write_csv(broken / "orders.csv")
    db = tmp_path / "wh.duckdb"
    shutil.copy(scanned_nights["db"], db)

    def known() -> int:
        with duckdb.connect(str(db), read_only=True) as con:
            return con.execute("select count(*) from ops.known_accounts").fetchall()[0][0]

    before = known()
    accounts = pl.read_csv(broken / "accounts.csv", infer_schema=False)
    renamed = accounts.with_columns(("NEW" + pl.col("account_id")).alias("account_id"))
    renamed.write_csv(broken / "accounts.csv")
    out = tmp_path / "out"
    with pytest.raises(QuietNightError) as refused:
        run_scan(ScanOptions(input_dir=broken, out_dir=out, db_path=db,
                             models_dir=scanned_nights["models"], run_date="2026-12-01"))
    message = str(refused.value)
    assert f"{orders.height:,} of the {orders.height:,} rows of orders.csv were rejected" in message
    assert f"most often for status ({orders.height:,} rows, e.g. " in message
    rejects = list((out / "refused").glob("*/quarantine.csv"))
    assert len(rejects) == 1 and str(rejects[0]) in message
    rows = pl.read_csv(rejects[0], infer_schema=False)
    assert rows.filter(pl.col("table_name") == "orders").height == orders.height
    assert not (out / "latest").exists() and not (out / "order_scores.parquet").exists()
    assert known() == before, "a refused night's accounts are not remembered"
    with duckdb.connect(str(db), read_only=True) as con:  # its rejects are in the file only
        assert con.execute("select count(*) from ops.quarantine where run_id not in "
                           "(select run_id from ops.runs)").fetchall() == [(0,)]
    # every row's status unreadable in its own way, and an accounts file with its header
    # only: the count is per column, not per value, and the empty file is named
    orders.with_columns(("x" + pl.col("order_id")).alias("status")).write_csv(broken / "orders.csv")
    accounts.head(0).write_csv(broken / "accounts.csv")
    with pytest.raises(QuietNightError) as refused:
        run_scan(ScanOptions(input_dir=broken, out_dir=out, db_path=db,
                             models_dir=scanned_nights["models"], run_date="2026-12-01"))
    assert f"most often for status ({orders.height:,} rows, e.g. " in str(refused.value)
    assert "the accounts file has no data rows" in str(refused.value)
    orders.head(0).write_csv(broken / "orders.csv")  # header only
    with pytest.raises(QuietNightError, match="orders.csv has no data rows"):
        run_scan(ScanOptions(input_dir=broken, out_dir=out, db_path=db,
                             models_dir=scanned_nights["models"], run_date="2026-12-01"))
    with duckdb.connect(str(db), read_only=True) as con:
        refused_rows = con.execute("select count(*) from ops.quarantine where run_id not in "
                                   "(select run_id from ops.runs)").fetchall()[0][0]
    assert refused_rows == 0  # a refused night's rejects are in refused/<run_id>/ only
    # the next published night (here a rerun of the last one) keeps only published runs' rows
    last = nightly_world["nights"][-1]
    scan_night(nightly_world, last, db, tmp_path / "out2", scanned_nights["models"])
    with duckdb.connect(str(db), read_only=True) as con:
        orphans = con.execute("select count(*) from ops.quarantine where run_id not in "
                              "(select run_id from ops.runs)").fetchall()[0][0]
    assert orphans == 0


def test_an_earlier_order_reaching_the_threshold_later_is_listed_once_as_flagged_late(
        nightly_world, scanned_nights):
    """A ring can form a few nights after its first orders: support's CSV lists the earlier
    nights' orders that reach the threshold only tonight (flagged_late), each on the first
    night it reaches it and never again as late."""
    out = scanned_nights["out"]
    listed_before: set[str] = set()
    late_total = 0
    for night in nightly_world["nights"]:
        flagged = pl.read_csv(out / "nights" / night / "flagged_orders.csv", infer_schema=False)
        export = pl.read_csv(nightly_world["root"] / "exports" / night / "orders.csv",
                             infer_schema=False)
        late = flagged.filter(pl.col("flagged_late") == "true")
        assert set(late["order_id"]).isdisjoint(export["order_id"]), night
        assert set(late["order_id"]).isdisjoint(listed_before), night
        assert (late["created_at"].str.slice(0, 10) < night).all(), night
        assert set(flagged.filter(pl.col("flagged_late") == "false")["order_id"]) <= set(export["order_id"])
        run = json.loads((out / "nights" / night / "run.json").read_text("utf-8"))
        assert run["summary"]["orders_flagged_late"] == late.height
        listed_before |= set(flagged["order_id"])
        late_total += late.height
    assert late_total > 0, "the 8-night world has orders flagged only after their night"


def test_an_empty_export_scanned_anyway_needs_a_named_night_over_a_history(
        nightly_world, scanned_nights, tmp_path):
    """--allow-small-export with a header-only orders file: refused with a reason on a new
    warehouse or without --run-date (no order names the night), scanned over the history
    otherwise (the window's rings stay listed, nothing of tonight is flagged)."""
    import shutil

    empty = tmp_path / "empty"
    shutil.copytree(nightly_world["root"] / "exports" / nightly_world["nights"][-1], empty)
    orders = pl.read_csv(empty / "orders.csv", infer_schema=False)
    orders.head(0).write_csv(empty / "orders.csv")
    fresh = dict(input_dir=empty, out_dir=tmp_path / "out", db_path=tmp_path / "new.duckdb",
                 models_dir=scanned_nights["models"], allow_small_export=True)
    with pytest.raises(QuietNightError, match="no valid orders to name the night by; pass --run-date"):
        run_scan(ScanOptions(**fresh))
    with pytest.raises(QuietNightError, match="holds no earlier night: there is nothing to scan"):
        run_scan(ScanOptions(**fresh, run_date="2026-12-01"))
    db = tmp_path / "wh.duckdb"
    shutil.copy(scanned_nights["db"], db)
    run = run_scan(ScanOptions(**{**fresh, "db_path": db}, run_date="2026-12-01"))
    assert run["run_date"] == "2026-12-01" and run["summary"]["orders_scored"] == 0
    assert pl.read_csv(tmp_path / "out" / "flagged_orders.csv").height == 0


def test_cohorts_follow_customers_through_the_kept_history_not_only_the_window(
        nightly_world, scanned_nights, tmp_path):
    """Repeat purchase at 60 and 90 days needs more than the 30-night window: the cohort
    marts read the whole kept history, whatever the lookback."""
    import shutil

    import duckdb

    from orderguard import health, history

    db = tmp_path / "wh.duckdb"
    shutil.copy(scanned_nights["db"], db)
    with duckdb.connect(str(db)) as con:
        history.use_window(con, nightly_world["nights"][-1], 2)  # a short lookback
        health.build_health_marts(con, {"run_id": "cohorts"})
        customers = con.execute("select count(*), max(observable_days) from marts.customer_cohorts"
                                ).fetchall()[0]
        in_history = con.execute("select count(distinct buyer_id), "
                                 "count(distinct buyer_id) filter (where created_at >= "
                                 "(select min(created_at) from staging.orders)) "
                                 "from staging.orders_history where paid_at is not null").fetchall()[0]
    assert customers[0] == in_history[0] > in_history[1]
    assert customers[1] > 5, "customers of the first nights are observed for all of them"


def test_later_nights_update_earlier_orders_and_clean_nights_lose_nothing(nightly_world, scanned_nights):
    import duckdb

    rows = pl.concat([
        pl.read_csv(nightly_world["root"] / "exports" / n / "orders.csv", infer_schema=False)
        .with_columns(pl.lit(n).alias("night"))
        for n in nightly_world["nights"]
    ])
    latest = rows.sort("night").group_by("order_id").last()
    updated = rows.group_by("order_id").agg(pl.col("status").n_unique().alias("states"))
    assert updated.filter(pl.col("states") > 1).height > 0, "some orders change state across nights"
    with duckdb.connect(str(scanned_nights["db"]), read_only=True) as con:
        history = con.sql("select order_id, status from staging.orders_history").pl()
    merged = latest.select("order_id", "status").join(history, on="order_id", suffix="_kept")
    assert merged.height == latest.height
    assert (merged["status"] == merged["status_kept"]).all()
    for run in scanned_nights["runs"]:
        assert run["counts"]["orders"]["quarantined"] == 0


def test_rule_hits_are_kept_night_after_night(nightly_world, scanned_nights):
    import duckdb

    with duckdb.connect(str(scanned_nights["db"]), read_only=True) as con:
        rows = con.sql("select run_date, code, hits, flagged from ops.rule_hits").pl()
    assert sorted(rows["run_date"].unique()) == nightly_world["nights"]
    assert rows.group_by("run_date", "code").len()["len"].max() == 1
    assert (rows["flagged"] <= rows["hits"]).all() and rows["hits"].sum() > 0


def test_rule_hits_count_the_list_as_the_report_does_late_flags_included(nightly_world, scanned_nights):
    """ops.rule_hits.listed counts each code on the night's flagged_orders.csv (late flags
    too, as the report's rule table); hits and flagged stay counts of the night's export."""
    import duckdb

    with duckdb.connect(str(scanned_nights["db"]), read_only=True) as con:
        rows = con.sql("select run_date, code, listed from ops.rule_hits where listed > 0").pl()
    late_codes = 0
    for night in nightly_world["nights"]:
        csv = pl.read_csv(scanned_nights["out"] / "nights" / night / "flagged_orders.csv",
                          infer_schema=False)
        codes = csv.select(pl.col("reason_codes").str.split(";"), "flagged_late").explode("reason_codes")
        late_codes += codes.filter(pl.col("flagged_late") == "true").height
        expected = dict(codes.group_by("reason_codes").len().iter_rows())
        assert dict(rows.filter(pl.col("run_date") == night).select("code", "listed").iter_rows()) \
            == expected, night
    assert late_codes > 0, "the nightly world flags orders late"


def whole_order_keys(con) -> pl.DataFrame:
    """What a first night would write for today's window: order_keys built from nothing."""
    from orderguard import warehouse

    sql = warehouse.sql_text("intermediate", "order_keys")
    con.execute("create or replace temp view order_keys_input as select * from staging.orders")
    try:
        return con.sql(sql).pl().sort("order_id")
    finally:
        con.execute("drop view order_keys_input")


def test_a_night_keys_only_its_own_orders_and_the_kept_rows_equal_a_rebuild(scanned_nights, tmp_path):
    import shutil

    from orderguard import warehouse

    later_nights = [run["intermediate_rows"] for run in scanned_nights["runs"][1:]]
    assert all(rows["orders_keyed"] < rows["order_keys"] for rows in later_nights), later_nights
    first = scanned_nights["runs"][0]["intermediate_rows"]
    assert first["orders_keyed"] == first["order_keys"]
    db = tmp_path / "wh.duckdb"
    shutil.copy(scanned_nights["db"], db)
    with warehouse.connect(db) as con:
        kept = con.sql("select * from intermediate.order_keys").pl().sort("order_id")
        assert kept.equals(whole_order_keys(con))
        assert con.execute("select count(*) from ops.unkeyed_nights").fetchall() == [(0,)]


def test_orders_are_keyed_again_when_their_product_buyer_or_unkeyed_night_changes(
        scanned_nights, tmp_path):
    import shutil

    from orderguard import features, graphs, warehouse

    db = tmp_path / "wh.duckdb"
    shutil.copy(scanned_nights["db"], db)
    with warehouse.connect(db) as con:
        params = features.feature_params(con, graphs.GraphSettings())
        product, buyer, order = con.execute(
            "select product_id, buyer_id, order_id from intermediate.order_keys "
            "where product_id is not null order by order_id limit 1 offset 100").fetchone()
        # a later export repriced a product and corrected a buyer's registration time, in
        # rows the window's orders were not exported with again
        for table in ("staging.products", "staging.products_history"):
            con.execute(f"update {table} set price = price + 1 where product_id = $p", {"p": product})
        con.execute("update staging.accounts_history set registered_at = registered_at - interval 3 day "
                    "where account_id = $a", {"a": buyer})
        # a night merged whose features never ran (the scan crashed in between)
        con.execute("update staging.orders_history set amount = amount + 1, _night = '2099-01-01' "
                    "where order_id = $o", {"o": order})
        con.execute("insert into ops.unkeyed_nights values ('2099-01-01')")
        expected = con.execute(
            "select count(distinct order_id) from staging.orders where product_id = $p "
            "or buyer_id = $a or order_id = $o", {"p": product, "a": buyer, "o": order}).fetchone()[0]

        rows, keyed = features.build_order_keys(con, params)

        assert keyed == expected and 0 < keyed < rows
        kept = con.sql("select * from intermediate.order_keys").pl().sort("order_id")
        assert kept.equals(whole_order_keys(con))
        new_amount = con.execute("select amount from staging.orders_history where order_id = $o",
                                 {"o": order}).fetchone()[0]
        assert kept.filter(pl.col("order_id") == order)["amount"].item() == new_amount
        assert con.execute("select count(*) from ops.unkeyed_nights").fetchall() == [(0,)]
        # other code makes the table again whole
        con.execute("update ops.lookup_fingerprints set fingerprint = 'older code' "
                    "where table_name = 'order_keys'")
        assert features.build_order_keys(con, params) == (rows, rows)
        assert con.sql("select * from intermediate.order_keys").pl().sort("order_id").equals(kept)


def test_history_older_than_keep_days_is_forgotten_without_changing_any_night(nightly_world, tmp_path):
    """A warehouse that keeps only the window publishes what one that keeps everything does
    (but the night it first sent an order it has forgotten), and holds no order, scoring
    input or rule hit from before the nights it keeps but tonight's late updates to older
    orders."""
    import duckdb

    from orderguard.history import nights_back

    nights = nightly_world["nights"][-4:]
    kept = {}
    # a night published 40 days ago (its scan's folder, before these nights)
    old_night = (date.fromisoformat(nights[-1]) - timedelta(days=40)).isoformat()
    for keep_days in (2, 90):
        root = tmp_path / f"keep{keep_days}"
        (root / "out" / "nights" / old_night).mkdir(parents=True)
        (root / "out" / "nights" / old_night / "flagged_orders.csv").write_text("order_id\n", "utf-8")
        runs = [scan_night(nightly_world, n, root / "wh.duckdb", root / "out", root / "models",
                           lookback_days=2, keep_days=keep_days) for n in nights]
        with duckdb.connect(str(root / "wh.duckdb"), read_only=True) as con:
            history = con.sql("select order_id, created_at from staging.orders_history").pl()
            tonight = con.sql("select order_id from ops.tonight_orders").pl()["order_id"]
            stored_nights, hit_nights = (
                sorted(con.sql(f"select distinct run_date from ops.{t}").pl()["run_date"])
                for t in ("feature_history", "rule_hits"))
            listed_nights = set(con.sql("select distinct night from ops.published_flags").pl()["night"])
        kept[keep_days] = {"runs": runs, "history": history, "tonight": tonight,
                           "stored_nights": stored_nights, "hit_nights": hit_nights,
                           "folders": sorted(p.name for p in (root / "out" / "nights").iterdir()),
                           "listed_nights": listed_nights,
                           "outputs": {name: (root / "out" / name).read_bytes() for name in OUTPUTS}}
    short, whole = kept[2], kept[90]
    for name in OUTPUTS:
        if name != "flagged_orders.csv":
            assert short["outputs"][name] == whole["outputs"][name], name
    # support's rows are the same; only first_listed differs, where tonight's export updates
    # an order first listed before the short history's nights: forgotten with the order
    start = nights_back(nights[-1], 2)
    short_rows, whole_rows = (
        pl.read_csv(io.BytesIO(k["outputs"]["flagged_orders.csv"]), infer_schema=False)
        for k in (short, whole))
    assert short_rows.drop("first_listed").equals(whole_rows.drop("first_listed"))
    differ = whole_rows.filter(short_rows["first_listed"] != whole_rows["first_listed"])
    assert (differ["first_listed"] < start.date().isoformat()).all()
    before = whole["history"].filter(pl.col("created_at") < start)
    late = before.filter(pl.col("order_id").is_in(whole["tonight"].implode()))
    assert late.height > 0, "tonight's export updates orders from before the kept nights"
    forgotten = set(before["order_id"]) - set(late["order_id"])
    assert forgotten, "the longer history holds orders the shorter one forgets"
    assert set(whole["history"]["order_id"]) - set(short["history"]["order_id"]) == forgotten
    assert set(late["order_id"]) <= set(short["history"]["order_id"])
    assert short["stored_nights"] == short["hit_nights"] == nights[-2:]
    assert whole["stored_nights"] == whole["hit_nights"] == nights
    last = short["runs"][-1]["window"]
    assert last["forgotten"]["orders"] > 0 and last["forgotten"]["feature_history"] > 0
    # the window does not reach back for the late updates, yet they are scored tonight
    assert last["window_start"] == start.isoformat()
    scored = pl.read_parquet(tmp_path / "keep2" / "out" / "order_scores.parquet")["order_id"]
    assert set(late["order_id"]) <= set(scored)
    assert all(not any(run["window"]["forgotten"].values()) for run in whole["runs"])
    # the published folders follow the history: a night before it stays only while a kept
    # listing points support to it (an order first listed then, updated tonight)
    assert whole["folders"] == [old_night, *nights]
    assert short["folders"] == sorted(set(nights[-2:]) | (short["listed_nights"] & set(nights)))
    assert short["runs"][0]["window"]["forgotten"]["night_folders"] >= 1  # the old night
    assert sum(run["window"]["forgotten"]["night_folders"] for run in short["runs"]) == (
        len(nights) + 1 - len(short["folders"]))


def test_keeping_fewer_nights_than_the_window_reads_is_refused(tmp_path, capsys):
    from orderguard import cli

    code = cli.main(["scan", "--input", str(tmp_path), "--out", str(tmp_path / "out"),
                     "--db", str(tmp_path / "wh.duckdb"), "--lookback-days", "30",
                     "--keep-days", "7", "--no-prefect"])
    assert code == 2
    assert "keep_days (7) must be at least lookback_days (30)" in capsys.readouterr().err
    assert not (tmp_path / "wh.duckdb").exists()


def test_an_output_folder_that_cannot_be_written_stops_the_scan_before_it_starts(tmp_path, capsys):
    from orderguard import cli

    (tmp_path / "a-file").write_text("not a folder", "utf-8")
    code = cli.main(["scan", "--input", str(tmp_path), "--out", str(tmp_path / "a-file" / "out"),
                     "--db", str(tmp_path / "wh.duckdb"), "--no-prefect"])
    assert code == 5
    err = capsys.readouterr().err
    assert "Not a directory" in err and "a-file" in err and "nothing of the night was published" in err
    assert "Traceback" not in err and not (tmp_path / "wh.duckdb").exists()


@pytest.mark.parametrize("night", ["2026/10/30", "20261030", "2026-10-32", "yesterday"])
def test_a_run_date_not_written_yyyy_mm_dd_is_refused_before_anything_is_written(tmp_path, capsys, night):
    """Nights are ordered by their label: a mistyped one merged into the history would make
    its rows win over every later night's."""
    from orderguard import cli

    code = cli.main(["scan", "--input", str(tmp_path), "--out", str(tmp_path / "out"),
                     "--db", str(tmp_path / "wh.duckdb"), "--run-date", night, "--no-prefect"])
    assert code == 2
    assert f"run date '{night}' is not a date written YYYY-MM-DD" in capsys.readouterr().err
    assert not (tmp_path / "wh.duckdb").exists() and not (tmp_path / "out").exists()


def test_an_old_export_scanned_as_a_later_night_is_refused_and_changes_nothing(
        nightly_world, scanned_nights, tmp_path):
    """Yesterday's folder still holding an older day's export: no order in it was created on
    the night, so the night is refused before its older rows could roll the history back."""
    import shutil

    import duckdb

    db = tmp_path / "wh.duckdb"
    shutil.copy(scanned_nights["db"], db)
    old = nightly_world["nights"][2]

    def history_state():
        with duckdb.connect(str(db), read_only=True) as con:
            return con.execute("select count(*), max(_night), sum(hash(order_id, status)) "
                               "from staging.orders_history").fetchall()[0]

    before = history_state()
    stale = f"no order created on 2026-12-31 .*latest was created {old}"
    with pytest.raises(QuietNightError, match=stale) as refused:
        run_scan(ScanOptions(input_dir=nightly_world["root"] / "exports" / old, out_dir=tmp_path / "out",
                             db_path=db, models_dir=scanned_nights["models"], run_date="2026-12-31"))
    assert history_state() == before
    rejects = list((tmp_path / "out" / "refused").glob("*/quarantine.csv"))
    assert len(rejects) == 1 and str(rejects[0]) in str(refused.value)


def test_a_cut_off_export_named_by_its_last_order_does_not_replace_the_published_night(
        nightly_world, scanned_nights, tmp_path):
    """The last night's export cut short: its newest orders are the night before's, so
    without --run-date it would be named after that night and replace its results."""
    import shutil

    import duckdb

    db = tmp_path / "wh.duckdb"
    shutil.copy(scanned_nights["db"], db)
    *_, previous, last = nightly_world["nights"]
    cut = tmp_path / "cut"
    shutil.copytree(nightly_world["root"] / "exports" / last, cut)
    orders = pl.read_csv(cut / "orders.csv", infer_schema=False)
    orders.filter(pl.col("created_at").str.slice(0, 10) < last).write_csv(cut / "orders.csv")

    def published():
        with duckdb.connect(str(db), read_only=True) as con:
            return con.execute("select run_date, run_id from ops.runs order by 1").fetchall()

    before = published()
    opts = ScanOptions(input_dir=cut, out_dir=tmp_path / "out", db_path=db,
                       models_dir=scanned_nights["models"], allow_small_export=True)
    with pytest.raises(QuietNightError, match=f"latest order was created on {previous}, a night "
                                              "already published from other files"):
        run_scan(opts)
    assert published() == before
    # the night's own files again: a rerun, not a replacement by other files
    same = ScanOptions(input_dir=nightly_world["root"] / "exports" / last, out_dir=tmp_path / "out",
                       db_path=db, models_dir=scanned_nights["models"])
    assert run_scan(same)["run_date"] == last


def test_a_mistyped_future_date_does_not_name_the_night(nightly_world, scanned_nights, tmp_path):
    """One order of tonight's export dated six days ahead: named after it, the night would be
    published as that future date and `latest` would stay on it for a week. Refused, naming
    the row, until the row is corrected or the night is named with --run-date."""
    import shutil
    from datetime import date, timedelta

    db = tmp_path / "wh.duckdb"
    shutil.copy(scanned_nights["db"], db)
    last = nightly_world["nights"][-1]
    typo = tmp_path / "typo"
    shutil.copytree(nightly_world["root"] / "exports" / last, typo)
    orders = pl.read_csv(typo / "orders.csv", infer_schema=False)
    ahead = (date.fromisoformat(last) + timedelta(days=6)).strftime("%Y/%m/%d") + " 10:00"
    # an order placed tonight and not yet paid, so no later time contradicts the typo
    row = 1 + orders.with_row_index().filter(
        pl.col("created_at").str.starts_with(last) & pl.col("paid_at").is_null())["index"][0]
    orders.with_columns(pl.when(pl.int_range(pl.len()) == row - 1).then(pl.lit(ahead))
                        .otherwise(pl.col("created_at")).alias("created_at")).write_csv(typo / "orders.csv")
    out = tmp_path / "out"
    with pytest.raises(QuietNightError) as refused:
        run_scan(ScanOptions(input_dir=typo, out_dir=out, db_path=db, models_dir=scanned_nights["models"]))
    message = str(refused.value)
    assert f"orders.csv row {row}, created_at '{ahead}'" in message
    assert "6 days after every other order" in message and f"--run-date {last}" not in message
    assert not (out / "latest").exists()
    # named by the operator, the night is the operator's
    run = run_scan(ScanOptions(input_dir=typo, out_dir=out, db_path=db,
                               models_dir=scanned_nights["models"], run_date=last))
    assert run["run_date"] == last and (out / "latest").resolve().name == last


def test_the_analyst_reads_the_night_the_marts_hold_and_every_order_of_a_ring(
        nightly_world, scanned_nights, tmp_path):
    """A ring's orders reach back over earlier nights; after an earlier night is rescanned the
    marts hold that night, and the notebook's run summary must be that night's too."""
    import shutil

    from orderguard import analyst

    rings = analyst.tonight(scanned_nights["db"]).rings
    assert rings.height
    for ring in rings.iter_rows(named=True):
        assert analyst.ring_orders(scanned_nights["db"], ring["ring_id"]).height == ring["order_count"]
    db = tmp_path / "wh.duckdb"
    shutil.copy(scanned_nights["db"], db)
    earlier = nightly_world["nights"][-3]
    scan_night(nightly_world, earlier, db, tmp_path / "out", scanned_nights["models"])
    again = analyst.tonight(db)
    assert again.run["run_date"] == earlier
    assert again.run["summary"]["orders_flagged"] == again.orders.height  # late flags included


def test_per_rule_precision_counts_verdicts_on_earlier_nights_orders(scanned_nights, tmp_path):
    """Support judges the orders of earlier nights' lists too, days later: their verdicts
    count for the rules that fired on them, not only tonight's export's."""
    import shutil

    import duckdb

    from orderguard import feedback

    db = tmp_path / "wh.duckdb"
    shutil.copy(scanned_nights["db"], db)
    with duckdb.connect(str(db)) as con:
        earlier = [r[0] for r in con.execute(
            "select order_id from ops.published_flags where order_id not in "
            "(select order_id from marts.order_scores) order by order_id limit 20").fetchall()]
        assert len(earlier) == 20
        verdicts = tmp_path / "verdicts.csv"
        verdicts.write_text("order_id,verdict\n" + "".join(f"{o},confirmed\n" for o in earlier), "utf-8")
        feedback.load_verdicts(con, verdicts)
        # the reasons support was sent the orders with, not tonight's rescoring of them
        codes = con.execute("select count(*) from (select unnest(reason_codes) "
                            "from ops.published_flags where list_contains($ids, order_id))",
                            {"ids": earlier}).fetchall()[0][0]
        precision = feedback.rule_precision(con)
        assert int(precision["verdicts"].sum()) == codes > 0
        # verdicts on orders never sent (a sample for recall) leave the rules' precision alone
        never_sent = [r[0] for r in con.execute(
            "select order_id from intermediate.order_scores where risk_level = 'low' and order_id "
            "not in (select order_id from ops.published_flags) order by order_id limit 30").fetchall()]
        sample = tmp_path / "sample.csv"
        sample.write_text("order_id,verdict\n" + "".join(f"{o},false_positive\n" for o in never_sent),
                          "utf-8")
        feedback.load_verdicts(con, sample)
        assert feedback.rule_precision(con).equals(precision)


def test_the_reports_tables_count_the_orders_its_headline_and_support_s_csv_count(scanned_nights):
    """Late flags are on tonight's list: the level/kind table, the rule hits and the shop table
    count them as the headline (run.json) and flagged_orders.csv do."""
    import json
    import re

    def section_of(page: str, anchor: str) -> str:
        start = page.index(f"<section id='{anchor}'>")
        return page[start:page.index("</section>", start)]

    night2 = scanned_nights["out"] / "latest"
    flagged = pl.read_csv(night2 / "flagged_orders.csv", infer_schema=False)
    assert flagged["flagged_late"].str.to_lowercase().eq("true").any(), "the last night has late flags"
    summary = json.loads((night2 / "run.json").read_text("utf-8"))["summary"]
    page = (night2 / "report.html").read_text("utf-8")
    levels = section_of(page, "levels")
    totals = [int(n.replace(",", "")) for n in re.findall(r"<td class='num'>([\d,]+)</td></tr>", levels)]
    assert sum(totals) == summary["orders_flagged"] == flagged.height
    rules = section_of(page, "rules")
    for code, hits in summary["top_reasons"].items():
        assert re.search(rf"<td>{code}</td><td>[^<]*</td><td class='num'>{hits:,}</td>", rules), code
    shops = section_of(page, "shops")
    by_shop = flagged.group_by("shop_id").len().sort(["len", "shop_id"], descending=[True, False]).row(0)
    assert re.search(rf"<td>{by_shop[0]}</td><td class='num'>[\d,]+</td><td class='num'>{by_shop[1]:,}</td>",
                     shops)


def test_support_sees_when_an_order_was_first_sent_to_them(nightly_world, scanned_nights):
    """An order of tonight's export flagged again after a status change was sent before:
    first_listed says the night, so support does not open a second case for it."""
    import duckdb

    last = nightly_world["nights"][-1]
    flagged = pl.read_csv(scanned_nights["out"] / "flagged_orders.csv", infer_schema=False)
    with duckdb.connect(str(scanned_nights["db"]), read_only=True) as con:
        listed = dict(con.execute("select order_id, night from ops.published_flags").fetchall())
    assert flagged["first_listed"].is_not_null().all()
    again = flagged.filter(pl.col("first_listed") < last)
    assert again.height, "the 8-night world re-lists orders that changed status"
    assert (again["flagged_late"] == "false").all(), "a late flag is listed once, tonight"
    for order_id, first in again.select("order_id", "first_listed").iter_rows():
        assert listed[order_id] == first
    new = flagged.filter(pl.col("first_listed") == last)
    assert (new["order_id"].replace_strict(listed, return_dtype=pl.String) == last).all()


def test_an_out_naming_a_file_or_a_disk_full_write_from_polars_is_exit_5(tmp_path, capsys, monkeypatch):
    """--out naming an existing file, and a writer that reports a full disk only in its
    message (Polars: 'No space left on device (os error 28)'), are the machine refusing a
    file (exit 5), not tracebacks."""
    from orderguard import cli, scan

    (tmp_path / "a-file").write_text("not a folder", "utf-8")
    args = ["scan", "--input", str(tmp_path), "--db", str(tmp_path / "wh.duckdb"), "--no-prefect"]
    assert cli.main([*args, "--out", str(tmp_path / "a-file")]) == 5
    err = capsys.readouterr().err
    assert "--out names a file, not a folder" in err and "Traceback" not in err

    def disk_full(opts, *rest, **kw):
        raise OSError("No space left on device (os error 28)")

    monkeypatch.setattr(scan, "run_scan", disk_full)
    assert cli.main([*args, "--out", str(tmp_path / "out")]) == 5
    assert "No space left on device: a file of the scan; nothing of the night" in capsys.readouterr().err


def test_a_night_that_fails_to_publish_leaves_the_marts_on_the_night_the_files_show(
        nightly_world, scanned_nights, tmp_path, monkeypatch):
    """The marts are rebuilt in the publish transaction: when the folder swap fails (a full
    disk), analysts' marts still hold the night support's files and ops.runs show."""
    import errno
    import shutil

    import duckdb

    from orderguard import publish

    db = tmp_path / "wh.duckdb"
    shutil.copy(scanned_nights["db"], db)
    last = nightly_world["nights"][-1]

    def marts_runs():
        with duckdb.connect(str(db), read_only=True) as con:
            return (con.execute("select distinct run_id from marts.order_scores").fetchall(),
                    con.execute("select distinct run_id from marts.rings").fetchall(),
                    con.execute("select run_id from ops.runs where run_date = ?", [last]).fetchall())

    before = marts_runs()
    assert before[0] == before[2]

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(publish, "swap_in", disk_full)
    with pytest.raises(OSError):
        scan_night(nightly_world, last, db, tmp_path / "out", scanned_nights["models"])
    assert marts_runs() == before


def test_evaluate_on_a_later_night_measures_every_order_support_was_sent(nightly_world, scanned_nights):
    """order_scores.parquet holds tonight's export; the late flags support also got are
    measured too, so evaluate's figures match the CSV's rows."""
    from orderguard.evaluate import evaluate_outputs

    flagged = pl.read_csv(scanned_nights["out"] / "flagged_orders.csv", infer_schema=False)
    labels = pl.read_csv(nightly_world["labels"] / "orders.csv", infer_schema=False)
    fake = set(labels.filter(pl.col("is_fraud") == "1")["order_id"])
    late = flagged.filter(pl.col("flagged_late") == "true")
    listed = evaluate_outputs(scanned_nights["out"], nightly_world["labels"])["listed"]
    assert listed["orders"] == flagged.height > listed["late"] == late.height > 0
    assert listed["late_precision"] == round(late["order_id"].is_in(fake).mean(), 4)
    assert listed["precision"] == round(flagged["order_id"].is_in(fake).mean(), 4)
    assert listed["unlabelled"] == 0


def test_a_late_flag_is_replayed_and_quoted_with_the_inputs_of_the_night_it_was_listed(
        nightly_world, scanned_nights):
    """A late flag reached the threshold only tonight: its inputs of its own night score it
    below. Tonight's are kept, so a backtest replays it flagged, as support got it, and the
    CSV's evidence quotes tonight's facts."""
    import duckdb

    from orderguard import backtest, detect
    from orderguard.rules import load_rules

    last = nightly_world["nights"][-1]
    flagged = pl.read_csv(scanned_nights["out"] / "flagged_orders.csv", infer_schema=False)
    late = flagged.filter(pl.col("flagged_late") == "true")["order_id"]
    live = load_rules(None)
    with duckdb.connect(str(scanned_nights["db"]), read_only=True) as con:
        stored = con.sql("select * from ops.feature_history where run_date = $night "
                         "and list_contains($late, order_id)",
                         params={"night": last, "late": late.to_list()}).pl()
        own_night = con.sql(
            "select * from ops.feature_history where run_date < $night and list_contains($late, order_id) "
            "qualify row_number() over (partition by order_id order by run_date desc) = 1",
            params={"night": last, "late": late.to_list()}).pl()
    assert sorted(stored["order_id"]) == sorted(late)
    assert backtest.flagged(detect.score_features(stored, live).with_columns(stored["suppressed_by"]),
                            live).all()
    replayed_then = backtest.flagged(
        detect.score_features(own_night, live).with_columns(own_night["suppressed_by"]), live)
    assert not replayed_then.any(), "on their own night they were below the threshold"


def test_a_rescanned_earlier_night_does_not_send_support_orders_it_was_sent_before(nightly_world, tmp_path):
    """Nights with a short lookback, then an earlier night rescanned: its window reaches back
    before the newest night's, and orders listed on those earlier nights are not listed again
    as new cases (late, or first listed tonight); its report's history ends at its night."""
    db, out, models = tmp_path / "wh.duckdb", tmp_path / "out", tmp_path / "models"
    nights = nightly_world["nights"][:5]
    for night in nights:
        scan_night(nightly_world, night, db, out, models, lookback_days=2)
    sent = {}  # order -> the first night support's CSV listed it
    for night in nights:
        for order_id in pl.read_csv(out / "nights" / night / "flagged_orders.csv",
                                    infer_schema=False)["order_id"]:
            sent.setdefault(order_id, night)
    rescanned = nights[2]
    scan_night(nightly_world, rescanned, db, out, models, lookback_days=2)
    page = (out / "nights" / rescanned / "report.html").read_text("utf-8")
    assert "History: 3 晚 night(s)" in page and nights[3] not in page  # up to its own night
    again = pl.read_csv(out / "nights" / rescanned / "flagged_orders.csv", infer_schema=False)
    sent_before = again.filter(pl.col("order_id").is_in(
        [o for o, n in sent.items() if n < rescanned]))
    assert sent_before.height, "the rescanned night lists orders sent on earlier nights"
    assert (sent_before["flagged_late"] == "false").all()
    assert (sent_before["first_listed"] < rescanned).all()


def test_a_rescanned_night_continues_the_rings_of_the_nights_before_it_not_after():
    """A ring's members drift over later nights; a rescan of an earlier night matches its
    rings against the nights before it, so an unchanged ring keeps its id."""
    import duckdb

    from orderguard import graphs, ring_ids

    con = duckdb.connect()
    con.execute("create schema ops")
    con.execute(ring_ids.HISTORY_DDL)
    first = [f"A{i:02d}" for i in range(13)]
    drifted = first[:6] + [f"B{i:02d}" for i in range(9)]  # 6/16 of the first in common
    for night, members in (("2026-10-14", first), ("2026-10-16", drifted), ("2026-10-20", drifted)):
        con.execute("insert into ops.ring_history (run_date, ring_id, kind, size, members) "
                    "values (?, 'BR-first', 'brushing', ?, ?)", [night, len(members), ";".join(members)])
    ring = graphs.Ring("brushing", tuple(first), 1.0, "evidence")
    hashed = ring.ring_id
    assert ring_ids.stabilise(con, [ring], "2026-10-15")[0].ring_id == "BR-first"
    ring = graphs.Ring("brushing", tuple(first), 1.0, "evidence")
    assert ring_ids.stabilise(con, [ring], "2026-10-21")[0].ring_id == hashed  # drifted away


def test_investigating_an_account_shows_its_window_orders_not_only_tonight_s(scanned_nights):
    """An analyst looking up a ring member on a nightly warehouse sees the orders of the
    lookback window; tonight's export holds only the last day's orders and updates."""
    from orderguard import analyst

    member = analyst.read(
        scanned_nights["db"],
        "select buyer_id, count(*) as orders from intermediate.order_scores group by 1 "
        "having bool_or(ring_id is not null) and not bool_or(is_tonight) "
        "order by orders desc, buyer_id limit 1").row(0, named=True)
    case = analyst.investigate(scanned_nights["db"], account_id=member["buyer_id"])
    assert case.timeline.filter(pl.col("event") == "order").height == member["orders"]
    why = case.why.row(0, named=True)
    assert why["orders"] == member["orders"] and why["flagged"]


def test_distribution_health_counts_the_window_s_flags_and_notebook_01_tonight_s_list(scanned_nights):
    """The scorecards cover the lookback window, so their commission on flagged orders counts
    every flagged order of the window, not only tonight's export; notebook 01's figure is
    the commission on the orders support got tonight, as run.json counts it."""
    from orderguard import analyst

    db = scanned_nights["db"]
    window, tonight_export, stake = analyst.read(db, """
        select sum(l.amount) filter (where s.risk_level <> 'low')::double,
               sum(l.amount) filter (where s.risk_level <> 'low' and s.is_tonight)::double,
               (select sum(commission_at_stake) from marts.distributor_sales)::double
        from marts.commission_ledger l join intermediate.order_scores s using (order_id)
        where l.status <> 'reversed'""").row(0)
    assert window > tonight_export and stake == pytest.approx(window)
    run = json.loads((scanned_nights["out"] / "run.json").read_text("utf-8"))
    assert analyst.tonight(db).money["commission_on_flagged_orders"] == pytest.approx(
        run["summary"]["commission_flagged"])


def test_orders_support_already_judged_come_back_marked_and_off_the_template(
        nightly_world, scanned_nights, tmp_path):
    """An order listed again (its status changed) carries support's earlier verdict; one
    judged a false positive is only watched, and neither is asked about again."""
    import shutil

    from orderguard import feedback, warehouse

    night = nightly_world["nights"][-1]
    last = pl.read_csv(scanned_nights["out"] / "flagged_orders.csv", infer_schema=False)
    again = last.filter(pl.col("first_listed") < night).sort("order_id")["order_id"].head(2).to_list()
    assert len(again) == 2, "the nightly world re-sends orders whose status changed"
    db = tmp_path / "wh.duckdb"
    shutil.copy(scanned_nights["db"], db)
    verdicts = tmp_path / "verdicts.csv"
    verdicts.write_text(f"order_id,verdict\n{again[0]},误报\n{again[1]},确认\n", "utf-8")
    with warehouse.connect(db) as con:
        feedback.load_verdicts(con, verdicts)
    run = scan_night(nightly_world, night, db, tmp_path / "out", scanned_nights["models"])
    rescanned = pl.read_csv(tmp_path / "out" / "flagged_orders.csv", infer_schema=False)
    judged = dict(rescanned.filter(pl.col("order_id").is_in(again))
                  .select("order_id", "prior_verdict").iter_rows())
    assert judged == {again[0]: "false_positive", again[1]: "confirmed"}
    actions = dict(rescanned.select("order_id", "recommended_action").iter_rows())
    assert actions[again[0]] == "观察"
    assert actions[again[1]] == dict(last.select("order_id", "recommended_action").iter_rows())[again[1]]
    template = pl.read_csv(tmp_path / "out" / "verdicts_template.csv", infer_schema=False)
    template = template.filter(pl.col("carried_from").is_null())  # tonight's, not earlier nights'
    assert set(template["order_id"]) == set(rescanned["order_id"]) - set(again)
    assert run["summary"]["orders_already_judged"] == 2
    assert run["summary"]["orders_new_cases"] == rescanned.filter(pl.col("first_listed") == night).height


def test_a_warehouse_from_before_published_flags_learns_what_was_sent_from_the_night_folders(
        nightly_world, scanned_nights, tmp_path):
    """A version before ops.published_flags wrote the same night folders: upgrading, the
    first night reads what support was sent from their CSVs, so no order sent before comes
    back as a new case and no order never sent is taken for one (rescoring the window with
    the new rules would say otherwise)."""
    import shutil

    import duckdb

    db, out = tmp_path / "wh.duckdb", tmp_path / "out"
    shutil.copy(scanned_nights["db"], db)
    shutil.copytree(scanned_nights["out"], out, symlinks=True)
    with duckdb.connect(str(db)) as con:
        sent = dict(con.execute("select order_id, night from ops.published_flags").fetchall())
        con.execute("drop table ops.published_flags")
    scan_night(nightly_world, nightly_world["nights"][-1], db, out, scanned_nights["models"])
    assert (out / "flagged_orders.csv").read_bytes() == scanned_nights["last_night"]["flagged_orders.csv"]
    with duckdb.connect(str(db), read_only=True) as con:
        assert dict(con.execute("select order_id, night from ops.published_flags").fetchall()) == sent


def _copy_db(scanned_nights, tmp_path):
    import shutil

    db = tmp_path / "wh.duckdb"
    shutil.copy(scanned_nights["db"], db)
    return db


def test_orders_left_undecided_or_unanswered_stay_in_the_template_until_judged(
        nightly_world, scanned_nights, tmp_path):
    """Earlier nights' orders support has not judged (a 待定 row, or no row) and that are not
    listed again tonight follow tonight's ids in the template, marked with the night whose
    CSV holds them; tonight's CSV and its counts of new and judged cases stay as they were."""
    import duckdb

    from orderguard import feedback, warehouse

    night = nightly_world["nights"][-1]
    db = _copy_db(scanned_nights, tmp_path)
    tonight = pl.read_csv(scanned_nights["out"] / "flagged_orders.csv", infer_schema=False)
    with duckdb.connect(str(db), read_only=True) as con:
        sent = dict(con.execute("select order_id, night from ops.published_flags where night < $n "
                                "order by night, order_id", {"n": night}).fetchall())
    earlier = [o for o in sent if o not in set(tonight["order_id"])]
    assert len(earlier) >= 3, "the nightly world sends orders that are not listed again"
    verdicts = tmp_path / "verdicts.csv"
    verdicts.write_text(f"order_id,verdict\n{earlier[0]},确认\n{earlier[1]},待定\n", "utf-8")
    with warehouse.connect(db) as con:
        assert feedback.load_verdicts(con, verdicts)["undecided"] == 1
    run = scan_night(nightly_world, night, db, tmp_path / "out", scanned_nights["models"])
    assert (tmp_path / "out" / "flagged_orders.csv").read_bytes() == \
        scanned_nights["last_night"]["flagged_orders.csv"], "carried cases are not sent again"
    template = pl.read_csv(tmp_path / "out" / "verdicts_template.csv", infer_schema=False)
    assert template.columns == ["order_id", "verdict", "note", "carried_from"]
    carried = template.filter(pl.col("carried_from").is_not_null())
    assert dict(carried.select("order_id", "carried_from").iter_rows()) == \
        {o: sent[o] for o in earlier[1:]}
    assert template.head(template.height - carried.height)["order_id"].to_list() == \
        tonight.filter(pl.col("prior_verdict").is_null())["order_id"].to_list()
    before = scanned_nights["runs"][-1]["summary"]
    for count in ("orders_new_cases", "orders_already_judged", "orders_flagged"):
        assert run["summary"][count] == before[count], count
    assert run["summary"]["orders_carried_forward"] == len(earlier) - 1


def test_a_buyer_cleared_nights_ago_is_not_a_free_pass_for_its_later_orders(
        nightly_world, scanned_nights, tmp_path):
    """A buyer support cleared on the second night comes back with a real action for orders
    placed days after that; a buyer cleared tonight, flagged for the reasons support saw,
    is only watched (观察)."""
    import duckdb

    from orderguard import feedback, warehouse

    nights = nightly_world["nights"]
    db = _copy_db(scanned_nights, tmp_path)
    tonight = pl.read_csv(scanned_nights["out"] / "flagged_orders.csv", infer_schema=False).filter(
        pl.col("ring_kind").fill_null("") != "fake_shipping")
    beyond = (datetime.fromisoformat(nights[1])
              + timedelta(days=feedback.ACCOUNT_CLEARANCE_DAYS + 1)).isoformat(sep=" ")
    with duckdb.connect(str(db), read_only=True) as con:
        early = {r[0] for r in con.execute(
            "select distinct h.buyer_id from ops.published_flags p "
            "join staging.orders_history h using (order_id) where p.night <= $n",
            {"n": nights[1]}).fetchall()}
    later = tonight.filter(pl.col("buyer_id").is_in(list(early)) & (pl.col("created_at") >= beyond))
    assert later.height, "buyers listed on the second night order again on the last"
    old_buyer = later.sort("order_id")["buyer_id"][0]
    new_buyer = tonight.filter(~pl.col("buyer_id").is_in(list(early))).sort("order_id")["buyer_id"][0]
    verdicts = tmp_path / "verdicts.csv"
    verdicts.write_text(f"account_id,verdict\n{old_buyer},误报\n{new_buyer},误报\n", "utf-8")
    with warehouse.connect(db) as con:
        feedback.load_verdicts(con, verdicts)
        # support judged the old buyer from the second night's list
        con.execute("update ops.verdicts set night = $n where account_id = $b",
                    {"n": nights[1], "b": old_buyer})
    scan_night(nightly_world, nights[-1], db, tmp_path / "out", scanned_nights["models"])
    rescanned = pl.read_csv(tmp_path / "out" / "flagged_orders.csv", infer_schema=False)
    back_ids = later.filter(pl.col("buyer_id") == old_buyer)["order_id"].to_list()
    back = rescanned.filter(pl.col("order_id").is_in(back_ids))
    assert back.height and back["prior_verdict"].is_null().all()
    assert (back["buyer_cleared_on"] == nights[1]).all()
    actions = dict(tonight.select("order_id", "recommended_action").iter_rows())
    assert all(r["recommended_action"] == actions[r["order_id"]] for r in back.iter_rows(named=True))
    template = pl.read_csv(tmp_path / "out" / "verdicts_template.csv", infer_schema=False)
    assert set(back["order_id"]) <= set(template["order_id"])
    watched = rescanned.filter(pl.col("buyer_id") == new_buyer)
    assert watched.height and (watched["prior_verdict"] == "false_positive").all()
    assert (watched["recommended_action"] == "观察").all() and watched["buyer_cleared_on"].is_null().all()
