"""End to end: what a user checks after a nightly scan."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import polars as pl
import pytest

from orderguard import publish
from orderguard.publish import CONTRACT_FILES
from orderguard.rules import load_rules
from orderguard.scan import stage_publish


def test_every_contract_file_is_published_complete(scanned_world):
    out = scanned_world["out"]
    for name in CONTRACT_FILES:
        assert (out / name).exists(), name
        assert (out / "latest" / name).exists(), name
    assert not list(out.glob(".tmp-*")), "no staging folder is left behind"


# the columns data-contract.md names for each file, in its order
CONTRACT_COLUMNS = {
    "order_scores.parquet": ["order_id", "score", "risk_level", "reason_codes", "ring_id"],
    "flagged_accounts.csv": ["account_id", "score", "ring_id", "reasons"],
    "rings.csv": ["ring_id", "kind", "size", "members", "order_count", "gmv",
                  "commission_at_stake", "evidence"],
}


@pytest.mark.parametrize("name", CONTRACT_COLUMNS)
def test_each_file_starts_with_the_contracts_columns_in_its_order(scanned_world, name):
    """Excel templates and scripts read these files by position: orderguard's own columns
    may only follow the contract's."""
    path = scanned_world["out"] / name
    frame = pl.read_parquet(path) if name.endswith(".parquet") else pl.read_csv(path, n_rows=1)
    wanted = CONTRACT_COLUMNS[name]
    assert frame.columns[:len(wanted)] == wanted


def test_every_valid_order_is_scored_exactly_once_and_counts_reconcile(scanned_world):
    out = scanned_world["out"]
    run = json.loads((out / "run.json").read_text("utf-8"))
    scores = pl.read_parquet(out / "order_scores.parquet")
    assert scores["order_id"].n_unique() == scores.height
    assert scores["score"].is_between(0, 1).all()
    for table, c in run["counts"].items():
        assert c["read"] == c["accepted"] + c["quarantined"], table
    assert run["counts"]["orders"]["accepted"] == scores.height
    source_rows = pl.read_csv(scanned_world["input"] / "orders.csv", infer_schema=False).height
    assert run["counts"]["orders"]["read"] == source_rows


def test_flagged_orders_are_highest_score_first_with_chinese_reasons(scanned_world):
    flagged = pl.read_csv(scanned_world["out"] / "flagged_orders.csv", infer_schema=False)
    assert flagged.height > 0
    scores = flagged["score"].cast(pl.Float64).to_list()
    assert scores == sorted(scores, reverse=True)
    assert flagged["reasons"].str.contains(r"[\u4e00-\u9fff]").all()
    assert set(flagged["recommended_action"]) <= set(publish.ACTION_WORDS)


def test_commission_paid_on_undone_flagged_orders_is_marked_for_claw_back(scanned_world):
    """Support sees, per flagged order, the commission already settled on it (from the
    commissions file) and 追回佣金 exactly where the order was since cancelled or refunded."""
    flagged = pl.read_csv(scanned_world["out"] / "flagged_orders.csv", infer_schema=False)
    commissions = pl.read_csv(scanned_world["input"] / "commissions.csv", infer_schema=False)
    settled = (commissions.filter(pl.col("status") == "settled")
               .group_by("order_id").agg(pl.col("amount").cast(pl.Float64).sum().alias("want")))
    got = flagged.select("order_id", "status", "recommended_action",
                         pl.col("commission_settled").cast(pl.Float64))
    got = got.join(settled, on="order_id", how="left")
    assert (got["commission_settled"] - got["want"].fill_null(0)).abs().max() < 0.005
    undone = pl.col("status").is_in(["cancelled", "refunded"])
    undone_paid = got.filter(undone & (pl.col("commission_settled") > 0))
    assert undone_paid.height > 0, "the test world has commission settled on since-refunded flagged orders"
    assert (undone_paid["recommended_action"] == "追回佣金").all()
    assert (got.filter(pl.col("recommended_action") == "追回佣金").height == undone_paid.height)
    # the night's total, for whoever recovers it, in run.json and on the report's first cards
    summary = json.loads((scanned_world["out"] / "run.json").read_text("utf-8"))["summary"]
    paid_out = undone_paid["commission_settled"].sum()
    assert summary["commission_to_claw_back"] == pytest.approx(paid_out, abs=0.01)
    report = (scanned_world["out"] / "report.html").read_text("utf-8")
    assert f"¥{summary['commission_to_claw_back']:,.2f}" in report.split("待追回佣金", 1)[1][:300]


def test_injected_rings_show_up_among_the_flagged_results(scanned_world):
    labels = pl.read_csv(scanned_world["labels"] / "rings.csv", infer_schema=False)
    rings = pl.read_csv(scanned_world["out"] / "rings.csv", infer_schema=False)
    reported = [set(m.split(";")) for m in rings["members"]]
    found = 0
    for row in labels.iter_rows(named=True):
        members = set(row["members"].split(";"))
        found += any(len(members & r) >= 0.5 * len(members) for r in reported)
    assert found / labels.height >= 0.7, f"found {found} of {labels.height} injected rings"
    assert set(rings["kind"]) >= {"brushing", "self_referral"}


def test_support_finds_every_flagged_order_of_a_ring_by_its_id(scanned_world):
    """An order in two rings carries the stronger in ring_id and the other in other_rings:
    filtering flagged_orders.csv by any ring id of rings.csv finds all its flagged orders."""
    import duckdb

    flagged = pl.read_csv(scanned_world["out"] / "flagged_orders.csv", infer_schema=False)
    with duckdb.connect(str(scanned_world["db"]), read_only=True) as con:
        ring_orders = con.sql("select ring_id, order_id from intermediate.ring_orders").pl()
    want = ring_orders.join(flagged.select("order_id"), on="order_id")
    got = pl.concat([
        flagged.select("order_id", "ring_id"),
        flagged.select("order_id", pl.col("other_rings").str.split(";").alias("ring_id")).explode("ring_id"),
    ]).drop_nulls()
    assert want.height > 0
    assert want.join(got, on=["order_id", "ring_id"], how="anti").is_empty()
    assert got.join(want, on=["order_id", "ring_id"], how="anti").is_empty()



def test_an_order_in_two_rings_lists_the_weaker_one_in_other_rings(scanned_world, tmp_path):
    import duckdb

    from orderguard.scan import support_orders

    db = tmp_path / "wh.duckdb"
    shutil.copy(scanned_world["db"], db)
    run = json.loads((scanned_world["out"] / "run.json").read_text("utf-8"))
    with duckdb.connect(str(db)) as con:
        # a flagged order of one ring also counted by two others (as a flood ring and a
        # self-referral ring can share orders)
        order_id, ring_id = con.execute(
            "select order_id, ring_id from marts.order_scores where ring_id is not null "
            "and risk_level <> 'low' order by order_id limit 1").fetchall()[0]
        before = support_orders(con, load_rules(), run["run_date"])
        con.execute("insert into intermediate.ring_orders (ring_id, order_id, kind) values "
                    "('MA-test0002', $o, 'malicious'), ('MA-test0001', $o, 'malicious')", {"o": order_id})
        frame = support_orders(con, load_rules(), run["run_date"])
    row = frame.filter(pl.col("order_id") == order_id).row(0, named=True)
    assert row["ring_id"] == ring_id and row["other_rings"] == "MA-test0001;MA-test0002"
    assert frame.columns[-7:] == ["other_rings", "flagged_late", "first_listed", "prior_verdict",
                                  "commission_pending", "referrer_id", "buyer_cleared_on"], \
        "new columns go last: support's sheets keep their places"
    others = pl.col("order_id") != order_id
    assert frame.filter(others)["other_rings"].equals(before.filter(others)["other_rings"])


def test_ring_money_counts_each_order_once_and_no_reversed_commission(scanned_world):
    """The report's ring GMV and commission add each ring order once (an order can be in two
    rings), and a ring's commission at stake leaves out commission already reversed."""
    import duckdb

    with duckdb.connect(str(scanned_world["db"]), read_only=True) as con:
        ring_orders = con.sql("select distinct ring_id, order_id from intermediate.ring_orders").pl()
    orders = pl.read_csv(scanned_world["input"] / "orders.csv", infer_schema=False).select(
        "order_id", pl.col("amount").cast(pl.Float64))
    commissions = pl.read_csv(scanned_world["input"] / "commissions.csv", infer_schema=False).filter(
        pl.col("status") != "reversed").group_by("order_id").agg(
        pl.col("amount").cast(pl.Float64).sum().alias("commission"))
    once = ring_orders.select("order_id").unique().join(orders, on="order_id").join(
        commissions, on="order_id", how="left")
    summary = json.loads((scanned_world["out"] / "run.json").read_text("utf-8"))["summary"]
    assert summary["ring_gmv"] == pytest.approx(once["amount"].sum(), abs=0.01)
    assert summary["ring_commission"] == pytest.approx(once["commission"].sum(), abs=0.01)
    per_ring = ring_orders.join(commissions, on="order_id", how="left").group_by("ring_id").agg(
        pl.col("commission").sum())
    rings = pl.read_csv(scanned_world["out"] / "rings.csv", infer_schema=False).select(
        "ring_id", pl.col("commission_at_stake").cast(pl.Float64))
    both = rings.join(per_ring, on="ring_id", how="left").with_columns(pl.col("commission").fill_null(0))
    assert (both["commission_at_stake"] - both["commission"]).abs().max() < 0.01


def test_the_run_record_says_which_model_scored_and_how_thresholds_were_set(scanned_world):
    run = json.loads((scanned_world["out"] / "run.json").read_text("utf-8"))
    assert run["scoring"]["model_action"].startswith("trained")
    assert (scanned_world["models"] / "isolation_forest.meta.json").exists()
    assert "threshold" in run["scoring"]["threshold_source"]
    stages = {"ingest", "stage", "features", "graphs", "score", "publish"}
    for figures in ("stage_seconds", "stage_cpu_seconds", "stage_peak_rss_mib"):
        assert set(run[figures]) == stages, figures
    assert all(mib > 50 for mib in run["stage_peak_rss_mib"].values()), "a Python process holds > 50 MiB"


def test_a_review_budget_flags_at_most_that_many_orders_a_day_the_highest_first(scanned_world, tmp_path):
    import shutil

    from orderguard import detect, warehouse
    from orderguard.rules import load_rules

    shutil.copy(scanned_world["db"], tmp_path / "wh.duckdb")  # the shared world stays as it is
    shutil.copytree(scanned_world["models"], tmp_path / "models")
    with warehouse.connect(tmp_path / "wh.duckdb") as con:
        unlimited = warehouse.query(con, "select order_id, risk_level from intermediate.order_scores")
        result = detect.run_scoring_stage(con, load_rules(), tmp_path / "models", 7, review_budget=3)
        scores = warehouse.query(
            con, "select order_id, created_at::date as day, score, risk_level from intermediate.order_scores")
    assert result.threshold_source.startswith("review budget of 3")
    assert scores.height == unlimited.height
    flagged = scores.filter(pl.col("risk_level") != "low")
    assert 0 < flagged.height == result.window_orders_flagged
    assert flagged.group_by("day").len()["len"].max() <= 3
    was_flagged = set(unlimited.filter(pl.col("risk_level") != "low")["order_id"])
    assert set(flagged["order_id"]) <= was_flagged, "a budget only takes flags away"
    for (day,), group in flagged.group_by(["day"]):  # the day's top scores, none skipped
        unflagged = scores.filter((pl.col("day") == day) & (pl.col("risk_level") == "low")
                                  & pl.col("order_id").is_in(list(was_flagged)))
        if unflagged.height:
            assert unflagged["score"].max() <= group["score"].min()


def test_a_workbook_that_fails_to_write_publishes_nothing_of_the_night(scanned_world, tmp_path, monkeypatch):
    """The workbook is written beside the health marts: its failure must still fail the night
    before anything is swapped in, leaving the last published night as it was."""
    shutil.copy(scanned_world["db"], tmp_path / "wh.duckdb")
    shutil.copytree(scanned_world["out"], tmp_path / "out", symlinks=True)
    opts = replace(scanned_world["opts"], db_path=tmp_path / "wh.duckdb", out_dir=tmp_path / "out",
                   run_id="test-run-broken-xlsx")
    before = {p.relative_to(tmp_path): p.read_bytes() for p in (tmp_path / "out").rglob("*") if p.is_file()}

    def broken(*args, **kwargs):
        raise OSError("disk full while writing the workbook")

    monkeypatch.setattr(publish, "write_xlsx", broken)
    with pytest.raises(OSError, match="disk full"):
        stage_publish(opts, load_rules(None), json.loads(json.dumps(scanned_world["run"], default=str)))
    published = [p for p in (tmp_path / "out").rglob("*")  # not the hidden .tmp-<run> folder
                 if p.is_file() and not p.relative_to(tmp_path / "out").parts[0].startswith(".")]
    after = {p.relative_to(tmp_path): p.read_bytes() for p in published}
    assert after == before


def test_a_night_that_fails_to_publish_is_not_recorded_as_published(scanned_world, tmp_path, monkeypatch):
    """A full disk at the last step (the folder swap): the warehouse must not remember the
    night as published (ops.runs, its rings and flags), or the next night's "what changed"
    would compare against results support never saw."""
    import duckdb

    db = tmp_path / "wh.duckdb"
    shutil.copy(scanned_world["db"], db)
    opts = replace(scanned_world["opts"], db_path=db, out_dir=tmp_path / "out", run_id="test-run-no-space")
    run = {**json.loads(json.dumps(scanned_world["run"], default=str)), "run_id": opts.run_id}
    book = ("select (select count(*) from ops.runs where run_id = $id), "
            "(select count(*) from ops.ring_history where run_id = $id), "
            "(select count(*) from ops.published_flags), (select string_agg(run_id) from ops.runs)")
    with duckdb.connect(str(db), read_only=True) as con:
        before = con.execute(book, {"id": opts.run_id}).fetchall()

    def no_space(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(publish, "swap_in", no_space)
    with pytest.raises(OSError, match="No space left"):
        stage_publish(opts, load_rules(None), run)
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute(book, {"id": opts.run_id}).fetchall() == before
    assert not list(opts.out_dir.glob(".tmp-*")), "the unpublished night's files are removed"
    monkeypatch.undo()
    stage_publish(opts, load_rules(None), run)  # the rerun publishes and records it
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("select count(*) from ops.runs where run_id = $id",
                           {"id": opts.run_id}).fetchall() == [(1,)]


def test_a_scheduled_scan_log_has_no_duckdb_progress_bars(tmp_path, capfd):
    """A nightly job's log holds the scan's own stage lines, not a redrawn bar per query."""
    from orderguard import warehouse

    with warehouse.connect(tmp_path / "wh.duckdb") as con:
        con.execute("set progress_bar_time = 0")  # a bar for any query, not only those over 2 s
        warehouse.query(con, "select count(*) from range(50000000) t(i) where i % 7 = 3")
    captured = capfd.readouterr()
    assert "%" not in captured.out + captured.err


def test_every_ring_names_the_shops_its_orders_were_at(scanned_world):
    """A risk lead asking which shops self-referral rings hit reads marts.rings: account
    rings (self-referral, chains) name the shops of their orders; shop-anchored rings keep
    the shops their detector targeted."""
    import duckdb

    with duckdb.connect(str(scanned_world["db"]), read_only=True) as con:
        rings = con.execute(
            "select r.kind, r.shops, string_agg(distinct o.shop_id, ';' order by o.shop_id) "
            "from marts.rings r join intermediate.ring_orders ro using (ring_id) "
            "join staging.orders o using (order_id) group by r.ring_id, r.kind, r.shops").fetchall()
    account_rings = [(shops, at) for kind, shops, at in rings if kind in ("self_referral", "deep_chain")]
    assert account_rings and all(shops == at for shops, at in account_rings)
    assert all(shops for _, shops, _ in rings)


def test_one_compound_is_one_address_area_however_the_orders_wrote_it(scanned_world, tmp_path):
    """Support filters the sheet by address_area: '宁波市江北区 绿城桂花园' and '…绿城桂花园小区'
    are one compound and must filter as one."""
    import duckdb

    from orderguard.scan import support_orders

    run = json.loads((scanned_world["out"] / "run.json").read_text("utf-8"))
    with duckdb.connect(str(scanned_world["db"]), read_only=True) as con:
        areas = support_orders(con, load_rules(), run["run_date"])["address_area"].drop_nulls().unique()
        written = con.execute("select count(distinct compound) from intermediate.norm_address "
                              "where compound like '%小区'").fetchone()[0]
    assert written, "the test world writes some compounds with 小区"
    assert not areas.str.ends_with("小区").any()
    bare = set(areas.str.replace(r"(小区)+$", ""))
    assert len(bare) == areas.len()


def test_run_json_names_the_code_revision_that_scanned_the_night(scanned_world):
    """The package version stays 0.1.0 between releases: an operator comparing a night before
    and after an upgrade reads which commit scanned each."""
    import subprocess

    head = subprocess.run(["git", "-C", str(Path(__file__).parent), "rev-parse", "--short=12", "HEAD"],
                          capture_output=True, text=True)
    if head.returncode:
        pytest.skip("not a git checkout")
    run = json.loads((scanned_world["out"] / "run.json").read_text("utf-8"))
    assert run["versions"]["orderguard_revision"].removesuffix("-dirty") == head.stdout.strip()
