"""Distribution health: scorecards, programme health and cohorts, as a programme manager
checks them: the money reconciles to the cent, cohorts match a hand count, and without a
commissions file the configured rates are applied and the report says so."""

from __future__ import annotations

import csv
import re
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

from orderguard import health, warehouse
from orderguard.scan import ScanOptions, run_scan

# ----------------------------------------------------------------------------- a tiny world
# D1 runs the programme; D2 was invited by D1. R1 (invited by D2) and R2 (invited by D1)
# came through referral; O1..O4 came on their own. Every order of January's customers can
# be followed for 90 days (the last order is 2026-05-15).

ACCOUNTS = [
    # account_id, registered_at, inviter_id, is_distributor
    ("D1", "2025-12-01T09:00:00", "", "true"),
    ("D2", "2025-12-05T09:00:00", "D1", "true"),
    ("R1", "2026-01-07T10:00:00", "D2", "false"),
    ("R2", "2026-01-11T10:00:00", "D1", "false"),
    ("O1", "2025-11-01T10:00:00", "", "false"),
    ("O2", "2025-11-02T10:00:00", "", "false"),
    ("O3", "2025-11-03T10:00:00", "", "false"),
    ("O4", "2025-11-04T10:00:00", "", "false"),
]
PRODUCTS = [("P1", "S1", "茶叶礼盒", "100.00", "60.00"), ("P2", "S2", "数据线", "20.00", "8.00")]
ORDERS = [
    # order_id, shop, buyer, product, amount, created_at, paid?, status, refunded_at, referrer
    ("A01", "S1", "O1", "P1", "100.00", "2026-01-05T10:00:00", True, "completed", "", ""),
    ("A02", "S1", "O1", "P1", "100.00", "2026-01-20T10:00:00", True, "completed", "", ""),  # day 15
    ("A03", "S1", "O2", "P1", "100.00", "2026-01-10T10:00:00", True, "completed", "", ""),
    ("A04", "S2", "O2", "P2", "20.00", "2026-03-01T10:00:00", True, "completed", "", ""),  # day 50
    ("A05", "S1", "O3", "P1", "100.00", "2026-01-15T10:00:00", True, "completed", "", ""),
    ("A06", "S1", "O3", "P1", "100.00", "2026-01-16T10:00:00", False, "cancelled", "", ""),  # unpaid
    ("A07", "S1", "R1", "P1", "100.00", "2026-01-08T10:00:00", True, "completed", "", "D2"),
    ("A08", "S1", "R1", "P1", "30.00", "2026-01-09T10:00:00", True, "refunded",
     "2026-01-12T10:00:00", "D2"),  # day 1, refunded
    ("A09", "S1", "R2", "P1", "80.00", "2026-01-12T10:00:00", True, "paid", "", "D1"),
    ("A10", "S2", "R2", "P2", "23.50", "2026-04-20T10:00:00", True, "paid", "", "D1"),  # day 98
    ("A11", "S2", "O4", "P2", "20.00", "2026-02-01T10:00:00", True, "completed", "", ""),
    ("A12", "S2", "O4", "P2", "20.00", "2026-02-02T10:00:00", True, "completed", "", ""),  # day 1
    ("A13", "S2", "O4", "P2", "20.00", "2026-05-15T10:00:00", True, "completed", "", ""),
]
COMMISSIONS = [
    # order_id, beneficiary_id, level, amount, status, settled_at
    ("A07", "D2", "1", "10.00", "settled", "2026-01-10T10:00:00"),
    ("A07", "D1", "2", "5.00", "settled", "2026-01-10T10:00:00"),
    ("A08", "D2", "1", "3.00", "reversed", ""),
    ("A08", "D1", "2", "1.50", "reversed", ""),
    ("A09", "D1", "1", "8.00", "pending", ""),
    ("A10", "D1", "1", "2.35", "pending", ""),
    ("NOPE", "D1", "1", "99.00", "pending", ""),  # not an accepted order: quarantined
    ("A09", "D2", "2", "abc", "pending", ""),  # not an amount: quarantined
]

# hand count: January cohort, first paid orders O1 01-05, O2 01-10, O3 01-15 (organic) and
# R1 01-08, R2 01-12 (referral); next paid orders after 15, 50, never (the cancelled order
# was never paid) and 1, 98 days.
HAND_COUNT = {
    ("2026-01", "organic"): {"customers": 3, "repeat_30d_rate": 1 / 3, "repeat_60d_rate": 2 / 3,
                             "repeat_90d_rate": 2 / 3},
    ("2026-01", "referral"): {"customers": 2, "repeat_30d_rate": 1 / 2, "repeat_60d_rate": 1 / 2,
                              "repeat_90d_rate": 1 / 2},
    ("2026-02", "organic"): {"customers": 1, "repeat_30d_rate": 1.0, "repeat_60d_rate": 1.0,
                             "repeat_90d_rate": 1.0},
}


def _write(path: Path, header: list[str], rows: list[tuple]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)


def write_tiny_world(folder: Path, with_commissions: bool) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    _write(folder / "accounts.csv", ["account_id", "registered_at", "inviter_id", "is_distributor"], ACCOUNTS)
    _write(folder / "products.csv", ["product_id", "shop_id", "name", "price", "cost"], PRODUCTS)
    _write(
        folder / "orders.csv",
        ["order_id", "shop_id", "buyer_id", "product_id", "quantity", "amount", "created_at", "paid_at",
         "status", "refunded_at", "refund_amount", "referrer_id"],
        [(o, s, b, p, 1, a, c, c.replace("T10:00", "T10:01") if paid else "", st, r, a if r else "", ref)
         for o, s, b, p, a, c, paid, st, r, ref in ORDERS],
    )
    if with_commissions:
        _write(folder / "commissions.csv",
               ["order_id", "beneficiary_id", "level", "amount", "status", "settled_at"], COMMISSIONS)
    return folder


def scan_folder(input_dir: Path, root: Path) -> Path:
    opts = ScanOptions(input_dir=input_dir, out_dir=root / "out", db_path=root / "wh.duckdb",
                       models_dir=root / "models", run_id="tiny", run_date="2026-05-15")
    run_scan(opts)
    return root


@pytest.fixture(scope="module")
def tiny_scanned(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tiny")
    return scan_folder(write_tiny_world(root / "in", with_commissions=True), root)


@pytest.fixture(scope="module")
def tiny_without_commissions(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tiny-nocomm")
    return scan_folder(write_tiny_world(root / "in", with_commissions=False), root)


def read(db: Path, sql: str) -> pl.DataFrame:
    with warehouse.connect(db, read_only=True) as con:
        return warehouse.query(con, sql)


# ----------------------------------------------------------------------------- helpers


def accepted_input_commissions(input_dir: Path, out_dir: Path) -> dict[tuple[int, str], Decimal]:
    """Per (level, status), the commission of the input file's rows the scan accepted
    (every row except those quarantine.csv lists), summed as exact decimals."""
    quarantined = pl.read_csv(out_dir / "quarantine.csv", infer_schema=False)
    rejected = {int(r) for r in quarantined.filter(pl.col("table_name") == "commissions")["row_number"]}
    totals: dict[tuple[int, str], Decimal] = defaultdict(Decimal)
    with open(input_dir / "commissions.csv", encoding="utf-8-sig") as fh:
        for number, row in enumerate(csv.DictReader(fh), start=1):
            if number not in rejected:
                totals[(int(row["level"]), row["status"].strip())] += Decimal(row["amount"])
    return dict(totals)


def scorecard_commissions(db: Path) -> dict[tuple[int, str], Decimal]:
    """Per (level, status), the commission the distributor scorecards attribute."""
    detail = read(
        db,
        "select d.level, d.status, sum(d.amount) as amount from (select unnest(commission_detail) as d "
        "from marts.distributor_scorecard) group by all",
    )
    return {(lvl, st): Decimal(str(amt)) for lvl, st, amt in detail.iter_rows()}


# ----------------------------------------------------------------------------- tests


def test_scorecard_commission_equals_accepted_input_rows_per_level_and_status(scanned_world):
    expected = accepted_input_commissions(scanned_world["input"], scanned_world["out"])
    assert expected, "the generated world has commissions"
    assert scorecard_commissions(scanned_world["db"]) == expected
    # the scorecard's status columns add up to the same money
    totals = read(
        scanned_world["db"],
        "select sum(commission_settled) as settled, sum(commission_pending) as pending, "
        "sum(commission_reversed) as reversed from marts.distributor_scorecard",
    ).row(0, named=True)
    for status in ("settled", "pending", "reversed"):
        want = sum((v for (_, st), v in expected.items() if st == status), Decimal(0))
        assert Decimal(str(totals[status])) == want, status


def test_quarantined_commission_rows_are_not_attributed_to_anyone(tiny_scanned):
    quarantined = pl.read_csv(tiny_scanned / "out" / "quarantine.csv", infer_schema=False)
    assert quarantined.filter(pl.col("table_name") == "commissions").height == 2
    expected = accepted_input_commissions(tiny_scanned / "in", tiny_scanned / "out")
    assert expected == {
        (1, "settled"): Decimal("10.00"), (2, "settled"): Decimal("5.00"),
        (1, "reversed"): Decimal("3.00"), (2, "reversed"): Decimal("1.50"),
        (1, "pending"): Decimal("10.35"),
    }
    assert scorecard_commissions(tiny_scanned / "wh.duckdb") == expected
    by_level = read(
        tiny_scanned / "wh.duckdb",
        "select level, status, commission from marts.commission_by_level where shop_id = 'ALL'",
    )
    assert {(lv, st): Decimal(str(c)) for lv, st, c in by_level.iter_rows()} == expected


def test_distributor_scorecard_has_one_row_per_distributor_with_earned_and_pending(tiny_scanned):
    cards = read(tiny_scanned / "wh.duckdb", "select * from marts.distributor_scorecard order by 1")
    assert cards["distributor_id"].to_list() == ["D1", "D2"]
    assert cards["distributor_id"].is_unique().all() and cards["run_id"].eq("tiny").all()
    d1 = cards.row(0, named=True)
    assert (d1["direct_downline"], d1["total_downline"], d1["levels_below"]) == (2, 3, 2)
    assert float(d1["commission_earned"]) == pytest.approx(5.00 + 8.00 + 2.35)
    assert float(d1["commission_pending"]) == pytest.approx(10.35)
    assert d1["referred_orders"] == 2 and float(d1["referred_gmv"]) == pytest.approx(103.50)
    assert set(cards["grade"]) <= set(health.GRADES)


def test_cohort_repeat_rates_match_a_hand_count(tiny_scanned):
    cohorts = read(tiny_scanned / "wh.duckdb", "select * from marts.cohort_retention")
    assert cohorts.select("cohort_month", "channel").is_unique().all()
    got = {(r["cohort_month"], r["channel"]): r for r in cohorts.iter_rows(named=True)}
    assert set(got) == set(HAND_COUNT)
    for key, want in HAND_COUNT.items():
        for column, value in want.items():
            assert got[key][column] == pytest.approx(value), (key, column)
    # R1's second order was refunded: one of the referral cohort's four paid orders
    assert got[("2026-01", "referral")]["refund_rate"] == pytest.approx(1 / 4)


def test_cohort_curves_rise_to_the_repeat_rates_of_the_cohort_table(tiny_scanned):
    curves = read(
        tiny_scanned / "wh.duckdb",
        "select day, repeat_rate from marts.cohort_curves "
        "where cohort_month = '2026-01' and channel = 'organic' order by day",
    )
    rate = dict(curves.iter_rows())
    assert rate[14] == pytest.approx(0) and rate[15] == pytest.approx(1 / 3)
    assert rate[30] == pytest.approx(1 / 3) and rate[50] == pytest.approx(2 / 3)
    assert rate[90] == pytest.approx(2 / 3)


def test_without_commissions_file_configured_rates_apply_along_the_inviter_chain(tiny_without_commissions):
    db = tiny_without_commissions / "wh.duckdb"
    ledger = read(db, "select order_id, level, beneficiary_id, amount, status, source "
                      "from marts.commission_ledger order by order_id, level")
    assert set(ledger["source"]) == {health.SOURCE_RATES}
    rows = {(o, lv): (b, Decimal(str(a)), st) for o, lv, b, a, st, _ in ledger.iter_rows()}
    assert rows == {
        ("A07", 1): ("D2", Decimal("10.00"), "settled"),   # 10 % of 100.00 to the referrer
        ("A07", 2): ("D1", Decimal("5.00"), "settled"),    # 5 % to the referrer's inviter
        ("A08", 1): ("D2", Decimal("3.00"), "reversed"),   # refunded: clawed back
        ("A08", 2): ("D1", Decimal("1.50"), "reversed"),
        ("A09", 1): ("D1", Decimal("8.00"), "pending"),    # D1 has no inviter: no level 2
        ("A10", 1): ("D1", Decimal("2.35"), "pending"),
    }
    html = (tiny_without_commissions / "out" / "report.html").read_text("utf-8")
    assert "No commissions file was given" in html and "L1 10% / L2 5% / L3 3%" in html


def test_a_scan_given_a_programme_file_uses_its_rates_per_shop(tiny_without_commissions, tmp_path, capsys):
    """A platform runs its own programme: `scan --programme` replaces the packaged rates, per
    shop where it says so, and run.json names the file."""
    import json

    from orderguard import cli

    programme = tmp_path / "programme.toml"
    programme.write_text("[default]\nrates = [0.10, 0.05, 0.03]\n[shops.S2]\nrates = [0.20]\n", "utf-8")
    out, db = tmp_path / "out", tmp_path / "wh.duckdb"
    assert cli.main(["scan", "--input", str(tiny_without_commissions / "in"), "--out", str(out),
                     "--db", str(db), "--models", str(tmp_path / "models"), "--run-date", "2026-05-15",
                     "--programme", str(programme), "--no-prefect"]) == 0
    capsys.readouterr()
    ledger = read(db, "select order_id, level, amount from marts.commission_ledger where order_id = 'A10'")
    levels = read(db, "select level, configured_rate, allowed_levels from marts.programme_rates "
                      "where shop_id = 'S2'")
    assert ledger.rows() == [("A10", 1, Decimal("4.70"))]  # 20 % of 23.50, not the default 10 %
    assert levels.rows() == [(1, 0.20, 1)]
    run = json.loads((out / "run.json").read_text("utf-8"))
    assert run["health"]["programme"] == str(programme)


GOOD_PROGRAMME = "[default]\nrates = [0.10, 0.05]\n[scorecard]\nburst_minutes = 60\n"


@pytest.mark.parametrize("edit, says", [
    (("rates", "rate"), r"\[default\]: unknown key 'rate' \(did you mean 'rates'\?\)"),
    (("[0.10, 0.05]", "[10, 5]"), r"\[default\]: rates must be a list of shares between 0 and 1"),
    (("[0.10, 0.05]", '["0.10"]'), r"\[default\]: rates must be a list of shares"),
    (("[0.10, 0.05]", "[0.6, 0.5]"), r"\[default\]: rates \[0.6, 0.5\] pay 110% of the order"),
    (("burst_minutes = 60", "burst_minute = 60"), r"\[scorecard\]: unknown key 'burst_minute'"),
    (("burst_minutes = 60", "burst_minutes = 7.5"), r"\[scorecard\]: burst_minutes must be a whole number"),
    (("burst_minutes = 60", 'rate_lift = "2"'), r"\[scorecard\]: rate_lift must be a number"),
    (("burst_minutes = 60", "grade_points = [3, 2, 1, 0]"), r"\[scorecard\]: grade_points must be 4 rising"),
    (("[scorecard]", "[shops.S1]\nrates = [0.2]\nallowed_levels = 0\n[scorecard]"),
     r"\[shops.S1\]: allowed_levels must be a whole number of levels, at least 1"),
    (("[scorecard]", "[shop.S1]\nrates = [0.2]\n[scorecard]"),
     r"unknown key 'shop' \(did you mean 'shops'\?\)"),
])
def test_a_mistake_in_a_programme_file_names_the_file_table_and_key(tmp_path, edit, says):
    """A misspelt key would otherwise be ignored (the scorecard then runs on its default) and a
    rate of 10 for 10 % would pay ten times the order: refused on loading, naming the file."""
    path = tmp_path / "programme.toml"
    path.write_text(GOOD_PROGRAMME, "utf-8")
    assert health.load_programme(path).default.rates == [0.10, 0.05]
    path.write_text(GOOD_PROGRAMME.replace(*edit), "utf-8")
    with pytest.raises(health.ProgrammeConfigError, match=re.escape(str(path)) + ".*" + says):
        health.load_programme(path)


def test_scan_with_a_broken_programme_file_exits_2_before_any_work(tmp_path, capsys):
    from orderguard import cli

    programme = tmp_path / "programme.toml"
    programme.write_text(GOOD_PROGRAMME.replace("rates", "rate"), "utf-8")
    (tmp_path / "in").mkdir()
    assert cli.main(["scan", "--input", str(tmp_path / "in"), "--out", str(tmp_path / "out"),
                     "--db", str(tmp_path / "wh.duckdb"), "--programme", str(programme),
                     "--no-prefect"]) == 2
    assert f"programme error: {programme} [default]: unknown key 'rate'" in capsys.readouterr().err
    assert not (tmp_path / "wh.duckdb").exists()


def test_report_section_escapes_text_and_embeds_both_charts(tiny_scanned):
    with warehouse.connect(tiny_scanned / "wh.duckdb", read_only=True) as con:
        fragment = health.report_section(con)
    assert fragment.count("data:image/png;base64,") == 2
    assert "Distribution health" in fragment and "<script" not in fragment
    assert "commissions file (6 accepted rows)" in fragment


GRAINS = {
    "programme_rates": ["shop_id", "level"],
    "commission_ledger": ["order_id", "level"],
    "distributor_downline": ["distributor_id", "account_id"],
    "distributor_recruiting": ["distributor_id"],
    "distributor_sales": ["distributor_id"],
    "distributor_activity": ["distributor_id"],
    "distributor_scorecard": ["distributor_id"],
    "commission_by_level": ["shop_id", "level", "status"],
    "programme_depth": ["shop_id", "referral_depth"],
    "programme_health": ["shop_id"],
    "customer_cohorts": ["buyer_id"],
    "cohort_retention": ["cohort_month", "channel"],
    "cohort_curves": ["cohort_month", "channel", "day"],
}


def test_every_health_mart_has_the_grain_its_sql_states(scanned_world):
    assert set(GRAINS) == set(health.HEALTH_MODELS)
    for name, key in GRAINS.items():
        grain_line = warehouse.sql_text("marts", name).splitlines()[0]
        assert grain_line.startswith("-- grain:"), name
        frame = read(scanned_world["db"], f"select {', '.join(key)} from marts.{name}")
        assert frame.height > 0, name
        assert frame.null_count().sum_horizontal()[0] == 0, name
        assert frame.is_unique().all(), name


def test_a_customers_first_order_is_the_earliest_then_the_smallest_order_id(tmp_path):
    """Two paid orders at the same second: the first is the smaller order_id (its channel
    decides the cohort's), and the second order is that same second."""
    with warehouse.connect(tmp_path / "wh.duckdb") as con:
        con.execute("create schema if not exists staging; create schema if not exists marts; "
                    "create schema if not exists intermediate")
        con.execute("""create table staging.orders_history as
            select order_id, buyer_id, referrer_id, created::timestamp as created_at,
                   paid::timestamp as paid_at, status, null::timestamp as refunded_at
            from (values ('T2', 'C1', 'D1', '2026-01-05 10:00', '2026-01-05 10:01', 'completed'),
                         ('T1', 'C1', null, '2026-01-05 10:00', '2026-01-05 10:01', 'completed'),
                         ('T3', 'C1', null, '2026-01-20 10:00', '2026-01-20 10:01', 'refunded'),
                         ('T4', 'C2', 'D1', '2026-01-07 10:00', null, 'cancelled'),
                         ('T5', 'C2', null, '2026-01-09 10:00', '2026-01-09 10:01', 'completed'))
                 t(order_id, buyer_id, referrer_id, created, paid, status)""")
        con.execute("create table staging.accounts_history as select * from (values ('C1', null::varchar), "
                    "('C2', null)) t(account_id, inviter_id)")
        con.execute("create table staging.batch_clock as select timestamp '2026-02-01' as as_of")
        con.execute("create table marts.flagged_accounts as select 'C2' as account_id")
        con.execute("create table intermediate.ring_members as select 'X' as account_id")
        warehouse.build_model(con, "marts", "customer_cohorts")
        rows = {r["buyer_id"]: r for r in warehouse.query(
            con, "select * from marts.customer_cohorts").iter_rows(named=True)}
    assert rows["C1"]["channel"] == "organic"  # T1 (no referrer) sorts before T2
    assert rows["C1"]["second_order_at"] == rows["C1"]["first_order_at"]
    assert (rows["C1"]["paid_orders"], rows["C1"]["refunded_orders"]) == (3, 1)
    assert rows["C2"]["channel"] == "organic"  # the referred order was never paid
    assert rows["C2"]["second_order_at"] is None and rows["C2"]["later_flagged"]


def test_an_owner_s_scorecard_names_the_self_referral_rings_it_owns_apart_from_other_rings(scanned_world):
    """'owns self-referral ring X' must name a self-referral ring the distributor owns, never
    a brushing ring it is only a member of (those are listed as the rings it is in)."""
    cards = read(scanned_world["db"],
                 "select distributor_id, reasons, owned_ring_ids, ring_ids from marts.distributor_scorecard "
                 "where owns_self_referral_ring")
    assert cards.height > 0, "the generated world has self-referral ring owners"
    owned = read(scanned_world["db"],
                 "select account_id, ring_id from intermediate.ring_members "
                 "where kind = 'self_referral' and role = 'owner'")
    owned_by = owned.group_by("account_id").agg(pl.col("ring_id").sort())
    want = {a: ";".join(r) for a, r in owned_by.iter_rows()}
    for distributor, reasons, owned_ids, ring_ids in cards.iter_rows():
        assert owned_ids == want[distributor]
        text = next(r for r in reasons if r.startswith("owns self-referral ring"))
        assert text.split()[3] == owned_ids
        assert all(i.startswith("SE-") for i in owned_ids.split(";"))
        if ring_ids != owned_ids:
            assert text.endswith(f"(in rings {ring_ids})")
