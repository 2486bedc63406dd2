"""Feature SQL on tiny literal exports: only required columns plus a device, minute-only
timestamps with an offset, one shop selling one product (the shape of real exports that
carry little), and a batch whose orders all share one timestamp."""

from __future__ import annotations

from pathlib import Path

import duckdb
import polars as pl
import pytest

from orderguard import graphs, warehouse
from orderguard.scan import ScanOptions, stage_features, stage_ingest, stage_validate

ORDER_COLUMNS = ["order_id", "shop_id", "buyer_id", "product_id", "quantity", "amount",
                 "created_at", "status", "device_id"]


def build(tmp_path: Path, orders: list[tuple], accounts: list[tuple],
          order_columns: list[str] = ORDER_COLUMNS,
          account_columns: tuple[str, ...] = ("account_id", "registered_at", "device_id"),
          ) -> duckdb.DuckDBPyConnection:
    folder = tmp_path / "in"
    folder.mkdir()
    pl.DataFrame(orders, schema=order_columns, orient="row").write_csv(folder / "orders.csv")
    pl.DataFrame(accounts, schema=list(account_columns), orient="row").write_csv(folder / "accounts.csv")
    opts = ScanOptions(input_dir=folder, out_dir=tmp_path / "out", db_path=tmp_path / "wh.duckdb",
                       models_dir=tmp_path / "models", run_id="t")
    stage_ingest(opts)
    stage_validate(opts)
    stage_features(opts, graphs.GraphSettings())
    return duckdb.connect(str(tmp_path / "wh.duckdb"), read_only=True)


def order(i: int, buyer: str, created: str, device: str, product: str = "P1") -> tuple:
    return (f"O{i}", "S1", buyer, product, 1, 10, created, "completed", device)


def test_new_accounts_ordering_at_once_behind_one_device(tmp_path):
    accounts = [
        ("a1", "2015-01-01T10:00Z", "D1"),
        ("a2", "2015-01-01T10:05Z", "D1"),
        ("a3", "2015-01-01T10:09Z", "D1"),
        ("b1", "2015-01-01T11:00Z", "D2"),  # alone on its device, also orders at once
        ("c1", "2015-01-01T09:00Z", "D3"),
    ]
    orders = [
        order(1, "a1", "2015-01-01T10:00Z", "D1"),  # same minute as registering
        order(2, "a2", "2015-01-01T10:06Z", "D1"),  # the next minute
        order(3, "a3", "2015-01-03T12:00Z", "D1"),  # two days later
        order(4, "b1", "2015-01-01T11:01Z", "D2"),
        order(5, "c1", "2015-01-02T09:00Z", "D3"),
    ]
    con = build(tmp_path, orders, accounts)
    got = dict(
        con.sql("select account_id, instant_siblings from intermediate.account_features").fetchall()
    )
    assert got == {"a1": 1, "a2": 1, "a3": 2, "b1": 0, "c1": 0}
    # only shared identifiers are counted; an account alone on its device still reads 1
    devices = con.sql("select id_value, n_accounts from intermediate.identifier_stats "
                      "where id_type = 'device'").fetchall()
    assert devices == [("d1", 3)]
    sharing = dict(con.sql(
        "select account_id, device_accounts from intermediate.account_features").fetchall())
    assert sharing == {"a1": 3, "a2": 3, "a3": 3, "b1": 1, "c1": 1}
    ages = dict(con.sql("select order_id, account_age_s from intermediate.order_keys").fetchall())
    assert ages["O1"] == 0 and ages["O2"] == 60 and ages["O5"] == 86400
    # one shop selling one product: every buyer's favourite is bought by everyone
    rates = con.sql(
        "select distinct top_product_share, top_product_buyer_rate from intermediate.account_features"
    ).fetchall()
    assert rates == [(1.0, 1.0)]


def test_orders_that_all_share_one_timestamp_have_no_burst(tmp_path):
    accounts = [(f"u{i}", "2011-01-01 12:00:00", None) for i in range(8)]
    orders = [order(i, f"u{i}", "2012-01-01 12:00:00", None) for i in range(8)]
    con = build(tmp_path, orders, accounts)
    bursts = con.sql("select window_orders, burst_ratio from intermediate.product_bursts").fetchall()
    assert bursts == [(8, None)] * 8

    spread = tmp_path / "spread"
    spread.mkdir()
    orders = [order(i, f"u{i}", f"2012-01-01 12:0{i}:00", None) for i in range(8)]
    con = build(spread, orders, accounts)
    ratios = con.sql("select burst_ratio from intermediate.product_bursts").fetchall()
    assert all(r is not None for (r,) in ratios)


def test_only_orders_failing_a_waybill_check_get_a_waybill_row(tmp_path):
    """A waybill on two buyers' orders to two addresses is reused; one parcel for a buyer's
    two orders is a merged shipment; consecutive waybills of one shop to different buyers are
    a sequential run; a lone ordinary waybill passes and has no row at all."""
    accounts = [(f"u{i}", "2020-01-01 08:00:00", None) for i in range(1, 8)]
    columns = [*ORDER_COLUMNS, "address", "carrier", "tracking_no", "shipped_at", "delivered_at"]
    shipped, delivered = "2020-03-01 10:00:00", "2020-03-01 20:00:00"
    home = "广州市天河区体育西路3号华景新城5栋1201室"

    def parcel(i, shop, buyer, address, waybill):
        return (f"O{i}", shop, buyer, "P1", 1, 10, "2020-03-01 09:00:00", "completed", None,
                address, "中通", waybill, shipped, delivered)

    orders = [
        parcel(1, "S1", "u1", "北京市朝阳区建国路1号", "ZT100000000001"),  # reused ...
        parcel(2, "S1", "u2", "上海市浦东新区世纪大道2号", "ZT100000000001"),  # ... by another buyer
        parcel(3, "S2", "u3", home, "ZT200000000050"),  # merged shipment:
        parcel(4, "S2", "u3", home, "ZT200000000050"),  # one parcel, one buyer
        parcel(5, "S3", "u4", "深圳市南山区科技园4号", "ZT300000000101"),  # sequential run ...
        parcel(6, "S3", "u5", "杭州市西湖区文三路5号", "ZT300000000102"),  # ... to another buyer
        parcel(7, "S4", "u6", "成都市武侯区人民南路6号", "ZT400000009000"),  # ordinary
    ]
    con = build(tmp_path, orders, accounts, columns)
    rows = con.sql(
        "select order_id, waybill_reused, waybill_sequential, waybill_suspect "
        "from intermediate.waybill_flags order by order_id").fetchall()
    assert rows == [("O1", True, False, True), ("O2", True, False, True),
                    ("O5", False, True, False), ("O6", False, True, False)]
    merged = con.sql("select waybill_orders, waybill_buyers, waybill_destinations "
                     "from intermediate.tracking_checks where order_id = 'O3'").fetchall()
    assert merged == [(2, 1, 1)]
    features = dict(con.sql(
        "select order_id, waybill_reused or waybill_malformed or long_undelivered "
        "or waybill_sequential from intermediate.order_features").fetchall())
    assert features == {"O1": True, "O2": True, "O3": False, "O4": False, "O5": True,
                        "O6": True, "O7": False}


def test_a_sequential_run_needs_six_serial_digits_after_one_prefix(tmp_path):
    """The serial number is the run of six digits or more at the end of a waybill, whatever
    precedes it (letters, digits, a dash); a shorter run is no serial number, and the same
    serial behind two prefixes is no run."""
    accounts = [(f"u{i}", "2020-01-01 08:00:00", None) for i in range(1, 9)]
    columns = [*ORDER_COLUMNS, "address", "carrier", "tracking_no", "shipped_at", "delivered_at"]

    def parcel(i, shop, waybill):
        return (f"O{i}", shop, f"u{i}", "P1", 1, 10, "2020-03-01 09:00:00", "completed", None,
                f"北京市朝阳区建国路{i}号", "顺丰速运", waybill, "2020-03-01 10:00:00",
                "2020-03-01 20:00:00")

    orders = [
        parcel(1, "S1", "SF12-3456789"), parcel(2, "S1", "sf12-3456791"),  # run, any case
        parcel(3, "S2", "AB12345"), parcel(4, "S2", "AB12346"),  # five digits: no serial
        parcel(5, "S3", "XA9000001"), parcel(6, "S3", "XB9000002"),  # two prefixes
        parcel(7, "S4", "98765432100"), parcel(8, "S4", "98765432103"),  # digits only
    ]
    con = build(tmp_path, orders, accounts, columns)
    sequential = con.sql("select order_id from intermediate.waybill_flags "
                         "where waybill_sequential order by order_id").fetchall()
    assert sequential == [("O1",), ("O2",), ("O7",), ("O8",)]


def test_a_warehouse_from_an_older_version_loses_its_retired_tables(tmp_path):
    """order_timing's columns moved into order_keys: a stale copy must not stay behind for an
    analyst to read."""
    from orderguard import features, warehouse

    con = build(tmp_path, [order(1, "a1", "2026-10-01 10:00", "d1")],
                [("a1", "2026-09-01 10:00", "d1")])
    con.close()
    with warehouse.connect(tmp_path / "wh.duckdb") as con:
        con.execute("create table intermediate.order_timing as select 1 as stale")
        features.build_intermediate(con, graphs.GraphSettings())
        assert not warehouse.table_exists(con, "intermediate", "order_timing")
        assert con.execute("select account_age_days from intermediate.order_keys").fetchall() == [(30.0,)]


def test_a_night_normalises_only_the_values_new_to_the_window(tmp_path, monkeypatch):
    from orderguard import features, normalize, warehouse

    con = warehouse.connect(tmp_path / "wh.duckdb")
    con.execute("create table staging.orders (address varchar, receiver_phone varchar, ip varchar)")
    con.execute("create table staging.accounts (phone varchar, ip varchar)")
    night_one = [("浙江省杭州市西湖区文三路90号1幢101室", "13812345678", "10.0.0.1"),
                 ("上海市静安区南京西路1号", "+86 139-1234-5678", "10.0.0.2")]
    con.executemany("insert into staging.orders values (?, ?, ?)", night_one)
    seen: list[list[str]] = []
    real = normalize.normalize_addresses
    monkeypatch.setattr(normalize, "normalize_addresses",
                        lambda s: (seen.append(s.to_list()), real(s))[1])
    monkeypatch.setattr(features, "LOOKUPS", tuple(
        (n, t, k, q, normalize.normalize_addresses if t == "norm_address" else f)
        for n, t, k, q, f in features.LOOKUPS))
    first = features.build_normalised_lookups(con)
    assert first["addresses"] == first["addresses_normalised"] == 2
    built = con.sql("select * from intermediate.norm_address order by address").pl()

    # the window moves: one address leaves, one arrives, one stays
    con.execute("delete from staging.orders where address like '上海%'")
    con.execute("insert into staging.orders values ('北京市海淀区中关村大街1号', null, '10.0.0.3')")
    second = features.build_normalised_lookups(con)
    assert seen[-1] == ["北京市海淀区中关村大街1号"]
    assert (second["addresses"], second["addresses_normalised"]) == (2, 1)
    assert (second["phones"], second["phones_normalised"]) == (1, 0)
    assert (second["ips"], second["ips_normalised"]) == (2, 1)
    now = con.sql("select * from intermediate.norm_address order by address").pl()
    assert now["address"].to_list() == ["北京市海淀区中关村大街1号", "浙江省杭州市西湖区文三路90号1幢101室"]
    # the kept row is last night's, and a whole rebuild gives the same rows
    assert now.filter(pl.col("address").str.starts_with("浙江")).equals(
        built.filter(pl.col("address").str.starts_with("浙江")))
    monkeypatch.setattr(features, "normaliser_fingerprint", lambda: "new code")
    rebuilt = features.build_normalised_lookups(con)
    assert rebuilt["addresses_normalised"] == 2
    assert con.sql("select * from intermediate.norm_address order by address").pl().equals(now)
    assert con.sql("select * from ops.lookup_fingerprints order by 1").fetchall() == [
        ("norm_address", "new code"), ("norm_ip", "new code"), ("norm_phone", "new code")]


def string_encodings(con: duckdb.DuckDBPyConnection, table: str) -> set[str]:
    return {row[0] for row in con.execute(
        "select distinct compression from pragma_storage_info($t) where column_name = 'order_id' "
        "and segment_type = 'VARCHAR'", {"t": table}).fetchall()}


def test_nightly_tables_are_written_with_text_uncompressed_and_kept_tables_are_not(tmp_path):
    """The intermediate tables rebuilt every night skip the text encodings (their CPU cost);
    a table written after the block is encoded as usual, and an error inside resets it too."""
    with warehouse.connect(tmp_path / "wh.duckdb") as con:
        rows = "select 'order-' || (i % 50000) as order_id from range(300000) t(i)"
        with warehouse.text_uncompressed(con):
            con.execute(f"create table intermediate.rebuilt as {rows}")
        con.execute(f"create table staging.kept as {rows}")
        with pytest.raises(RuntimeError), warehouse.text_uncompressed(con):
            raise RuntimeError("a model failed")
        con.execute(f"create table staging.kept_after_an_error as {rows}")
        assert string_encodings(con, "intermediate.rebuilt") == {"Uncompressed"}
        assert "Uncompressed" not in string_encodings(con, "staging.kept")
        assert "Uncompressed" not in string_encodings(con, "staging.kept_after_an_error")


def test_a_run_of_bulk_orders_at_one_shop_is_counted_and_flags_on_its_own(tmp_path):
    """Shoppers buy one or two of P1; a flooder keeps ordering 30 at a time (恶意下单 before
    the cancellations arrive); a reseller places one bulk order. Only the flood's orders are
    bulk orders of a buyer with a run of them, and with a second family (here every buyer
    pays the exact list price for one product again and again) only they flag."""
    from orderguard.detect import score_features
    from orderguard.rules import load_rules

    accounts = [(f"u{i}", "2020-01-01 08:00:00", None) for i in range(20)] + [
        ("flood", "2020-03-01 08:00:00", None), ("resell", "2020-01-01 08:00:00", None)]
    orders = [(f"O{i}", "S1", f"u{i}", "P1", 1 + i % 2, 10, f"2020-03-01 09:{i:02d}:00", "paid",
               None) for i in range(20)]
    orders += [(f"F{i}", "S1", "flood", "P1", 30, 300, f"2020-03-01 10:{i:02d}:00", "paid", None)
               for i in range(10)]
    orders += [("R1", "S1", "resell", "P1", 40, 400, "2020-03-01 11:00:00", "paid", None)]
    con = build(tmp_path, orders, accounts)
    features = con.sql("select * from intermediate.order_features order by order_id").pl()
    bulk = dict(features.select("order_id", pl.col("bulk_orders_at_shop") * pl.col("is_bulk_order"))
                .iter_rows())
    assert {o for o, n in bulk.items() if n} == {f"F{i}" for i in range(10)} | {"R1"}
    assert bulk["F0"] == 10 and bulk["R1"] == 1
    scored = score_features(features.with_columns(
        buyer_orders=pl.lit(10), buyer_exact_price_share=pl.lit(1.0), buyer_top_product_share=pl.lit(1.0),
        forest_rank=pl.lit(0.5), supervised_points=pl.lit(0.0)), load_rules())
    flagged = set(scored.filter(pl.col("score") >= 0.6)["order_id"])
    assert flagged == {f"F{i}" for i in range(10)}


def test_a_waybill_shape_only_one_shop_writes_is_malformed_however_many_orders_it_has(tmp_path):
    """A carrier's numbers come from its own system: six shops write J&T's JT + 13 digits; a
    seventh writes every waybill one digit short (a number generator's one format, 20 orders,
    far above the 0.5 % a rare shape needs); two shops writing one odd shape between them are
    no single shop's invention."""
    columns = [*ORDER_COLUMNS, "carrier", "tracking_no", "shipped_at", "delivered_at"]
    plan = [(f"S{s}", "JT", 13, 40) for s in range(1, 7)] + [("S7", "JT", 12, 20)] + [
        ("S8", "JTX", 12, 10), ("S9", "JTX", 12, 10)]
    orders = []
    for shop, prefix, digits, count in plan:
        for _ in range(count):
            i = len(orders)
            orders.append((f"O{i}", shop, f"u{i}", "P1", 1, 10, "2020-03-01 09:00:00", "completed",
                           None, "极兔速递", f"{prefix}{(i + 1) * 7919:0{digits}d}",
                           "2020-03-01 10:00:00", "2020-03-01 20:00:00"))
    accounts = [(f"u{i}", "2020-01-01 08:00:00", None) for i in range(len(orders))]
    con = build(tmp_path, orders, accounts, columns)
    malformed = con.sql("select shop_id, count(*) from intermediate.waybill_flags "
                        "where waybill_malformed group by 1").fetchall()
    assert malformed == [("S7", 20)]


def test_a_brushing_cohort_sharing_no_identifier_is_found_and_an_honest_sale_is_not(tmp_path):
    """A 刷手 network: ten accounts, each on its own device, registered minutes apart two days
    before, buy P1 once within twenty minutes, pay seconds after ordering and review 5 stars
    minutes after delivery. A flash sale of thirty honest buyers of P2 pays as fast and ships
    in one waybill run, and ten of them review as fast (a cashback card): a third of the
    sale, not a cohort. Six quick reviewers of P3 are too few to be one."""
    columns = [*ORDER_COLUMNS, "paid_at", "carrier", "tracking_no", "shipped_at",
               "delivered_at", "review_rating", "reviewed_at"]
    orders, accounts = [], []

    def buy(shop, product, minute, registered, quick_review, waybill):
        i = len(orders)
        accounts.append((f"u{i}", registered, f"dev{i}"))
        created = f"2020-02-29 20:{minute:02d}:00"
        orders.append((f"{product}-{i}", shop, f"u{i}", product, 1, 10, created, "completed",
                       f"dev{i}", f"2020-02-29 20:{minute:02d}:08", "中通", f"ZT{waybill:012d}",
                       "2020-03-01 08:00:00", "2020-03-01 18:00:00",
                       5 if quick_review else None,
                       "2020-03-01 18:05:00" if quick_review else None))

    for i in range(10):
        buy("S1", "P1", 2 * i, f"2020-02-27 14:{3 * i:02d}:00", True, 100000 + 1000 * i)
    for i in range(30):
        buy("S2", "P2", i, "2019-06-01 09:00:00", i % 3 == 0, 200000 + i)
    for i in range(6):
        buy("S3", "P3", 5 * i, f"2020-02-27 15:{3 * i:02d}:00", True, 300000 + 1000 * i)
    con = build(tmp_path, orders, accounts, columns)
    cohorts = con.sql("select * from intermediate.behaviour_cohorts order by order_id").pl()
    assert cohorts["order_id"].to_list() == sorted(f"P1-{i}" for i in range(10))
    assert cohorts["cohort_buyers"].unique().to_list() == [10]
    assert cohorts["fast_pay"].all() and cohorts["batch_registered"].all()
    assert not cohorts["sequential_waybill"].any()

    [ring] = graphs.behaviour_cohort_rings(cohorts)
    assert ring.kind == "brushing" and ring.members == tuple(sorted(f"u{i}" for i in range(10)))
    assert ring.products == ("P1",) and "100% paid seconds after ordering" in ring.evidence
    assert "within 18 minutes" in ring.evidence and "18 分钟内" in ring.evidence_zh


def test_invitees_signing_up_together_are_a_burst_on_a_quiet_inviter_not_in_a_livestream(tmp_path):
    """A distributor's four alts registered within six minutes on a day it invited no one
    else: a burst. A viral distributor's fans, 600 signing up through the day: every fan has
    siblings within minutes, and that is the distributor's normal day. (A livestream packing
    hundreds into an hour is a spike on that day too and still reads as a burst: 0.8 points,
    never a flag on its own.)"""
    from datetime import datetime, timedelta

    day = datetime(2026, 10, 1)
    stamp = lambda t: t.strftime("%Y-%m-%dT%H:%M:%SZ")  # noqa: E731
    accounts = [("Q", stamp(day - timedelta(days=30)), "", "DQ")]
    accounts += [(f"A{i}", stamp(day + timedelta(hours=9, minutes=2 * i)), "Q", f"DA{i}") for i in range(4)]
    accounts += [("V", stamp(day - timedelta(days=30)), "", "DV")]
    fans = [day + timedelta(minutes=24 * 60 * i / 600) for i in range(600)]
    accounts += [(f"F{i}", stamp(t), "V", f"DF{i}") for i, t in enumerate(fans)]
    buyers = ["A0", "F0"]
    orders = [order(i, b, stamp(day + timedelta(days=1)), f"DX{i}") for i, b in enumerate(buyers)]
    con = build(tmp_path, orders, accounts,
                account_columns=("account_id", "registered_at", "inviter_id", "device_id"))
    bursts = dict(con.sql("select account_id, siblings_within_10min from intermediate.account_features "
                          "where inviter_id is not null").fetchall())
    assert all(bursts[f"A{i}"] == 3 for i in range(4))
    assert max(bursts[f"F{i}"] for i in range(600)) == 0

