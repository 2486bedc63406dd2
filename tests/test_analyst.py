"""The helpers behind the analyst notebooks: they read what the scan wrote, read-only, and
give the figures an analyst would otherwise compute by hand."""

from __future__ import annotations

import shutil

import polars as pl
import pytest
from matplotlib.figure import Figure

from orderguard import analyst, feedback, warehouse


@pytest.fixture(scope="module")
def db(scanned_world):
    return scanned_world["db"]


@pytest.fixture(scope="module")
def labels(scanned_world):
    return scanned_world["labels"]


def test_every_helper_opens_the_warehouse_read_only_and_lets_go_of_it(db, labels, monkeypatch):
    modes = []
    real = warehouse.connect

    def spy(path=None, read_only=False):
        modes.append(read_only)
        return real(path, read_only=read_only)

    monkeypatch.setattr(warehouse, "connect", spy)
    t = analyst.tonight(db)
    analyst.ring_drawing(db, t.rings["ring_id"][0])
    analyst.budget_curve(db, labels)
    analyst.what_if(db, 0.5, labels)
    analyst.investigate(db, account_id=t.orders["buyer_id"][0])
    analyst.scorecard(db)
    assert modes and all(modes), "no helper may open the warehouse for writing"
    monkeypatch.undo()
    # nothing is left open: the nightly writer can take the file at once
    with warehouse.connect(db) as con:
        assert warehouse.scalar(con, "select count(*) from marts.order_scores") > 0


def test_warehouse_path_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(analyst.DB_ENV, str(tmp_path / "elsewhere.duckdb"))
    assert analyst.warehouse_path() == tmp_path / "elsewhere.duckdb"
    monkeypatch.delenv(analyst.DB_ENV)
    assert analyst.warehouse_path().parts[-2:] == ("data", "warehouse.duckdb")


def test_tonight_lists_the_published_flagged_orders_and_rings(db, scanned_world):
    t = analyst.tonight(db)
    published = pl.read_csv(scanned_world["out"] / "flagged_orders.csv", infer_schema=False)
    # the same list in the same order (ties of the rounded score shown are no reordering)
    assert t.orders["order_id"].to_list() == published["order_id"].to_list()
    assert t.orders["score"].to_list() == sorted(t.orders["score"].to_list(), reverse=True)
    rings = pl.read_csv(scanned_world["out"] / "rings.csv", infer_schema=False)
    assert set(t.rings["ring_id"]) == set(rings["ring_id"])
    assert t.money["flagged_gmv"] == pytest.approx(float(t.orders["amount"].sum()), abs=0.01)
    assert 0 < t.money["commission_still_pending"] <= t.money["commission_on_flagged_orders"]
    assert t.history.height >= 1 and t.run["run_id"] == scanned_world["run"]["run_id"]


def test_ring_drawing_shows_the_members_and_their_shared_identifiers_but_no_values(db):
    rings = analyst.tonight(db).rings
    ring = rings.filter(pl.col("kind") == "self_referral").row(0, named=True)
    graph = analyst.ring_graph(db, ring["ring_id"])
    members = set(ring["members"].split(";"))
    accounts = {n for n, d in graph.nodes(data=True) if d["kind"] == "account"}
    assert accounts == members
    assert all(graph.degree(n) >= 2 for n, d in graph.nodes(data=True) if d["kind"] != "account")
    fig = analyst.ring_drawing(db, ring["ring_id"])
    assert isinstance(fig, Figure)
    texts = " ".join(t.get_text() for ax in fig.axes for t in ax.texts)
    values = [n.split(":", 1)[1] for n, d in graph.nodes(data=True) if d["kind"] != "account"]
    assert values and not any(v in texts for v in values)
    assert graph.graph["owner"] in members
    # who invited whom among the members is drawn too (a self-referral ring is its owner's
    # invitations), and every such edge matches the accounts table
    invites = [(u, v) for u, v, d in graph.edges(data=True) if d.get("kind") == "invite"]
    assert invites and all(u in members and v in members for u, v in invites)
    inviter = dict(analyst.read(db, "select account_id, inviter_id from staging.accounts "
                                    "where inviter_id is not null").iter_rows())
    assert all(inviter.get(u) == v or inviter.get(v) == u for u, v in invites)
    ring_orders = analyst.ring_orders(db, ring["ring_id"])
    assert ring_orders.height == ring["order_count"]


def test_precision_and_recall_at_a_budget_match_a_count_from_the_labels(db, labels):
    curve = analyst.budget_curve(db, labels, budgets=(10, 50))
    scores = analyst.read(db, "select order_id, created_at, score from marts.order_scores")
    truth = pl.read_csv(labels / "orders.csv", infer_schema=False).select(
        "order_id", pl.col("is_fraud").cast(pl.Int8))
    joined = scores.join(truth, on="order_id").sort(["score"], descending=True)
    top = joined.with_columns(pl.int_range(pl.len()).over(pl.col("created_at").dt.date()).alias("r"))
    # ties are broken arbitrarily; compare on the budget's precision within a tolerance
    for row in curve.iter_rows(named=True):
        picked = top.filter(pl.col("r") < row["budget_per_day"])
        assert row["selected"] == picked.height
        assert row["precision"] == pytest.approx(picked["is_fraud"].mean(), abs=0.02)
        assert row["recall"] == pytest.approx(picked["is_fraud"].sum() / joined["is_fraud"].sum(), abs=0.02)
    assert curve["recall"].to_list() == sorted(curve["recall"].to_list())


def test_verdicts_take_precedence_over_generated_labels(db, labels, tmp_path):
    copy = tmp_path / "wh.duckdb"
    shutil.copy(db, copy)
    flagged = analyst.tonight(copy).orders["order_id"].head(3).to_list()
    verdicts = tmp_path / "verdicts.csv"
    verdicts.write_text("order_id,verdict\n" + "\n".join(f"{o},confirmed" for o in flagged[:2])
                        + f"\n{flagged[2]},误报\n", "utf-8")
    with warehouse.connect(copy) as con:
        feedback.load_verdicts(con, verdicts)
    known = analyst.truth(copy, labels)
    assert known["source"].unique().to_list() == ["verdicts"]
    assert dict(known.select("order_id", "label").iter_rows()) == {
        flagged[0]: 1, flagged[1]: 1, flagged[2]: 0}
    assert analyst.truth(db, labels)["source"].unique().to_list() == ["labels"]


def test_what_if_moves_only_the_orders_between_the_two_thresholds(db, labels):
    current = analyst.thresholds(db)["flag"]
    lower = analyst.what_if(db, current - 0.2, labels)
    assert lower.dropped.is_empty()
    assert lower.added["score"].is_between(current - 0.2, current, closed="left").all()
    now, proposed = lower.summary.row(0, named=True), lower.summary.row(1, named=True)
    assert proposed["selected"] == now["selected"] + lower.added.height
    # raised to the median flagged score: half of tonight's flags have a score below it
    raised = float(analyst.read(db, "select median(score) as m from marts.order_scores "
                                    "where risk_level <> 'low'")["m"][0])
    higher = analyst.what_if(db, raised, labels)
    assert higher.added.is_empty() and higher.dropped.height > 0
    assert higher.dropped["score"].is_between(current, raised, closed="left").all()
    assert higher.summary.row(1, named=True)["selected"] == now["selected"] - higher.dropped.height


def test_rule_hits_count_each_reason_code_once_per_order(db, labels):
    hits = analyst.rule_hits(db, labels)
    assert hits["code"].is_unique().all()
    counted = analyst.read(db, "select count(*) as n from marts.order_scores "
                               "where list_contains(reason_codes, 'SHARED_ADDRESS')")
    assert hits.filter(pl.col("code") == "SHARED_ADDRESS")["orders"][0] == counted["n"][0]
    assert hits["precision"].drop_nulls().is_between(0, 1).all()


def test_investigating_a_ring_owner_explains_the_flag_and_shows_the_alts(db, labels):
    truth = pl.read_csv(labels / "accounts.csv", infer_schema=False)
    owners = truth.filter((pl.col("role") == "owner") & (pl.col("kind") == "self_referral"))
    owners = set(owners["account_id"])
    owner = analyst.example_account(db)
    assert owner in owners
    case = analyst.investigate(db, account_id=owner)
    why = case.why.row(0, named=True)
    assert why["flagged"] and why["ring_role"] == "owner"
    assert why["explanation"].startswith("flagged: member (owner) of self_referral ring")
    assert why["distributor_grade"] in ("D", "E")
    alts = set(truth.filter(pl.col("ring_id") == truth.filter(pl.col("account_id") == owner)["ring_id"][0])
               ["account_id"]) - {owner}
    assert alts <= set(case.linked["linked_account"]) | set(case.chain["other_id"])
    times = case.timeline["at"].to_list()
    assert times == sorted(times) and "commission" in set(case.timeline["event"])


def test_investigate_by_device_address_or_shop_finds_the_accounts_behind_it(db):
    row = analyst.read(
        db, "select buyer_id, device_key, address_strict_key, shop_id from intermediate.order_keys "
            "where device_key is not null and address_strict_key is not null order by order_id limit 1",
    ).row(0, named=True)
    by_device = analyst.investigate(db, device=row["device_key"].upper())
    assert row["buyer_id"] in set(by_device.accounts["account_id"])
    by_address = analyst.investigate(db, address_key=row["address_strict_key"])
    assert row["buyer_id"] in set(by_address.why["account_id"])
    shop = analyst.investigate(db, shop_id=row["shop_id"])
    assert set(shop.timeline.filter(pl.col("event") == "order")["shop_id"]) == {row["shop_id"]}
    # a busy shop cut to a few buyers keeps the riskiest and says how many it left out
    few = analyst.investigate(db, shop_id=row["shop_id"], max_accounts=3)
    best = analyst.read(db, "select buyer_id, max(score) as best from intermediate.order_scores "
                            "where buyer_id in (select buyer_id from staging.orders where shop_id = $s) "
                            "group by 1 order by best desc, buyer_id", {"s": row["shop_id"]})
    assert few.query["accounts_found"] == best.height > 3 and few.query["accounts_shown"] == 3
    assert sorted(few.why["account_id"]) == sorted(best["buyer_id"].head(3))
    nobody = analyst.investigate(db, account_id="no-such-account")
    assert nobody.timeline.is_empty() and nobody.why["explanation"][0].startswith("not flagged")
    with pytest.raises(ValueError, match="exactly one"):
        analyst.investigate(db, account_id="x", shop_id="y")


def test_distribution_helpers_read_the_health_marts(db):
    cards = analyst.scorecard(db, grades=["D", "E"])
    assert cards.height and set(cards["grade"]) <= {"D", "E"}
    assert cards["grade"].to_list() == sorted(cards["grade"].to_list(), reverse=True)
    whole = analyst.programme(db, shop_id="ALL")
    assert whole["health"]["shop_id"].to_list() == ["ALL"]
    assert whole["commission_source"] == "commissions file"
    grades = analyst.grade_counts(db)
    assert grades["distributors"].sum() == analyst.scorecard(db).height
    cohorts = analyst.cohorts(db)
    assert cohorts["retention"].select("cohort_month", "channel").is_unique().all()


def test_recall_stays_empty_when_only_support_s_own_list_has_outcomes(db, labels, tmp_path):
    """Verdicts come back for flagged orders only: the fraud the scan missed is unknown, so
    recall cannot be read from them (it would say 1.0); precision can."""
    copy = tmp_path / "wh.duckdb"
    shutil.copy(db, copy)
    flagged = analyst.tonight(copy).orders["order_id"].head(6).to_list()
    verdicts = tmp_path / "verdicts.csv"
    verdicts.write_text("order_id,verdict\n" + "\n".join(
        f"{o},{'confirmed' if i % 3 else 'false_positive'}" for i, o in enumerate(flagged)) + "\n", "utf-8")
    with warehouse.connect(copy) as con:
        feedback.load_verdicts(con, verdicts)
    budget = analyst.budget_curve(copy, labels, (50, 500))
    assert budget["recall"].is_null().all()
    assert budget["precision"].drop_nulls().is_between(0, 1).all() and budget["precision"].drop_nulls().len()
    assert analyst.budget_curve(db, labels, (50, 500))["recall"].is_not_null().all()


def test_recall_from_a_sample_of_unflagged_orders_counts_what_the_sample_stands_for():
    """Support judged all 100 flagged orders (all fraud) and a random 10 of 1,000 unflagged
    ones, one of them fraud: about 100 frauds were missed, so recall is a half, not 100/101."""
    frame = pl.DataFrame({
        "order_id": [f"O{i}" for i in range(1100)],
        "score": [0.9] * 100 + [0.1] * 1000,
        "risk_level": ["high"] * 100 + ["low"] * 1000,
        "alertable": [True] * 1100,
        "label": [1] * 100 + [1] + [0] * 9 + [None] * 990,
    }, schema_overrides={"label": pl.Int8})
    figures = analyst._precision_recall(pl.col("score") >= 0.6, frame)
    assert (figures["precision"], figures["recall"]) == (1.0, 0.5)


def test_a_nightly_warehouse_s_budget_is_one_night_s_list(tmp_path, db, labels):
    """Scanned night by night, tonight's export (new orders and updates to older ones) is
    one night's work for support, whatever days its orders were made on."""
    copy = tmp_path / "wh.duckdb"
    shutil.copy(db, copy)
    with warehouse.connect(copy) as con:  # an earlier night in the warehouse's history
        con.execute("insert into ops.runs select * replace ('2000-01-01' as run_date) from ops.runs")
    curve = analyst.budget_curve(copy, labels, (50,))
    assert curve.row(0, named=True)["days"] == 1 and curve.row(0, named=True)["selected"] == 50


def test_threshold_figures_leave_out_what_the_allow_list_keeps_from_support(db, labels, tmp_path):
    """At tonight's threshold the notebook's list is the one support received: orders an
    allow-list entry kept low are not in it, and a verdict on one of them is no outcome of
    an unflagged order (recall stays empty with verdicts on support's list only)."""
    copy = tmp_path / "wh.duckdb"
    shutil.copy(db, copy)
    flagged = analyst.tonight(copy).orders["order_id"].to_list()
    cleared = flagged[:5]
    with warehouse.connect(copy) as con:  # as the scan leaves an allow-listed order
        con.execute("update marts.order_scores set risk_level = 'low', suppressed_by = "
                    "'account:X (checked, until 2099-01-01)' where list_contains($ids, order_id)",
                    {"ids": cleared})
    tonight = analyst.what_if(copy, analyst.thresholds(copy)["flag"], labels).summary.row(0, named=True)
    assert tonight["selected"] == len(flagged) - len(cleared)
    assert not set(cleared) & set(analyst.what_if(copy, 0.1, labels).added["order_id"])
    verdicts = tmp_path / "verdicts.csv"
    verdicts.write_text("order_id,verdict\n" + "".join(f"{o},confirmed\n" for o in flagged[:8]), "utf-8")
    with warehouse.connect(copy) as con:
        feedback.load_verdicts(con, verdicts)
    assert analyst.threshold_curve(copy, labels)["recall"].is_null().all()


def test_the_demo_labels_are_read_only_beside_the_demo_warehouse(tmp_path, monkeypatch):
    """Notebook 02 pointed at the nightly warehouse measured it against the demo's labels,
    none of whose orders it holds; now it uses support's verdicts there."""
    (tmp_path / "data" / "demo" / "labels").mkdir(parents=True)
    monkeypatch.setenv("ORDERGUARD_ROOT", str(tmp_path))
    monkeypatch.delenv("ORDERGUARD_LABELS", raising=False)
    monkeypatch.delenv("ORDERGUARD_DB", raising=False)
    assert analyst.labels_path() == tmp_path / "data" / "demo" / "labels"
    monkeypatch.setenv("ORDERGUARD_DB", str(tmp_path / "data" / "nightly" / "warehouse.duckdb"))
    assert analyst.labels_path() is None
    monkeypatch.setenv("ORDERGUARD_LABELS", str(tmp_path / "mine"))
    assert analyst.labels_path() == tmp_path / "mine"
