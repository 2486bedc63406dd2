"""The synthetic world generator: contract, labels, determinism, and that the hard preset
cannot be solved by any single behaviour feature."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from sklearn.metrics import roc_auc_score

from orderguard.contract import COMMISSION_STATUSES, ORDER_STATUSES, TABLES
from orderguard.generate import (
    GeneratorConfig,
    backfill_export,
    generate_to_folders,
    generate_world,
    night_export,
    write_world,
)

FRAUD_KINDS = ("brushing", "self_referral", "malicious", "fake_shipping", "deep_chain")
CROWDS = ("single", "household", "office", "campus", "cgnat_mobile")


@pytest.fixture(scope="module")
def world():
    return generate_world(GeneratorConfig(accounts=4000, seed=11, preset="default"))


@pytest.fixture(scope="module")
def hard():
    return generate_world(GeneratorConfig(accounts=6000, seed=5, preset="hard"))


@pytest.fixture(scope="module")
def easy():
    return generate_world(GeneratorConfig(accounts=3000, seed=3, preset="easy"))


def _labelled(w) -> pl.DataFrame:
    return w.orders.join(w.order_labels, on="order_id", how="left")


def _digest(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------------ determinism
def test_same_seed_writes_byte_identical_files(tmp_path):
    for run in ("a", "b"):
        w = generate_world(GeneratorConfig(accounts=3000, seed=21, preset="hard"))
        write_world(w, tmp_path / run / "in", tmp_path / run / "labels")
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")


def test_same_seed_gives_identical_frames_and_another_seed_does_not(world):
    again = generate_world(GeneratorConfig(accounts=4000, seed=11, preset="default"))
    other = generate_world(GeneratorConfig(accounts=4000, seed=12, preset="default"))
    for name, df in world.inputs().items():
        assert df.equals(again.inputs()[name]), name
    for name, df in world.labels().items():
        assert df.equals(again.labels()[name]), name
    assert not world.orders.equals(other.orders)
    assert set(world.accounts["account_id"]) != set(other.accounts["account_id"])


# ------------------------------------------------------------------------ contract
@pytest.mark.parametrize("preset", ["world", "hard", "easy"])
def test_tables_follow_the_contract(preset, request):
    w = request.getfixturevalue(preset)
    for name, df in w.inputs().items():
        table = TABLES[name]
        assert tuple(df.columns) == table.column_names, name
        for col in table.required_columns:
            assert df[col].null_count() == 0, (name, col)
        if table.key:
            assert df[table.key].n_unique() == df.height, name
    assert set(w.orders["status"].unique()) <= set(ORDER_STATUSES)
    assert set(w.commissions["status"].unique()) <= set(COMMISSION_STATUSES)
    o = w.orders
    assert (o["quantity"] >= 1).all() and (o["amount"] >= 0).all()
    assert (o["refund_amount"].drop_nulls() <= o.filter(pl.col("refund_amount").is_not_null())[
        "amount"]).all()
    assert o["review_rating"].drop_nulls().is_between(1, 5).all()


def test_every_reference_points_at_an_existing_row(world):
    accounts = world.accounts["account_id"]
    o, c, p = world.orders, world.commissions, world.products
    assert o["buyer_id"].is_in(accounts.implode()).all()
    assert o["referrer_id"].drop_nulls().is_in(accounts.implode()).all()
    assert world.accounts["inviter_id"].drop_nulls().is_in(accounts.implode()).all()
    assert c["order_id"].is_in(o["order_id"].implode()).all()
    assert c["beneficiary_id"].is_in(accounts.implode()).all()
    assert o["product_id"].is_in(p["product_id"].implode()).all()
    shop_of = o.join(p.select("product_id", pl.col("shop_id").alias("ps")), on="product_id")
    assert (shop_of["shop_id"] == shop_of["ps"]).all()


def test_timestamps_follow_each_other_and_carry_seconds(world):
    o = world.orders
    for a, b in [("created_at", "paid_at"), ("paid_at", "shipped_at"),
                 ("shipped_at", "delivered_at"), ("delivered_at", "reviewed_at")]:
        both = o.filter(pl.col(a).is_not_null() & pl.col(b).is_not_null())
        assert (both[b] >= both[a]).all(), (a, b)
    assert (o["created_at"].dt.second() == 0).mean() < 0.05
    end = dt.datetime(2026, 10, 31)
    for col in ("created_at", "paid_at", "shipped_at", "delivered_at", "reviewed_at",
                "refunded_at"):
        assert (o[col].drop_nulls() < end).all(), col


def test_commissions_climb_the_inviter_chain(world):
    o, c = world.orders, world.commissions
    l1 = c.filter(pl.col("level") == 1).join(o.select("order_id", "referrer_id"), on="order_id")
    assert (l1["beneficiary_id"] == l1["referrer_id"]).all()
    inv = dict(world.accounts.select("account_id", "inviter_id").iter_rows())
    chain = c.sort("order_id", "level").group_by("order_id", maintain_order=True).agg("beneficiary_id")
    for bens in chain["beneficiary_id"].head(300):
        for lower, upper in zip(bens, bens[1:], strict=False):
            assert inv[lower] == upper
    assert c["level"].max() > 3  # the deep-chain shop pays beyond the programme's 3 levels
    rates = c.join(o.select("order_id", pl.col("amount").alias("paid")), on="order_id").select(
        "level", (pl.col("amount") / pl.col("paid")).alias("rate"), "paid")
    expected = pl.col("level").replace_strict({1: 0.10, 2: 0.05, 3: 0.03}, default=0.02)
    assert rates.select(((pl.col("rate") - expected).abs() * pl.col("paid") <= 0.006).all()).item()
    reversed_ = c.filter(pl.col("status") == "reversed").join(o, on="order_id")
    assert (reversed_["status_right"] == "refunded").all()
    settled = c.filter(pl.col("status") == "settled")
    assert settled["settled_at"].null_count() == 0


# ------------------------------------------------------------------------ labels
@pytest.mark.parametrize("preset", ["world", "hard", "easy"])
def test_labels_cover_every_order_and_account_once_and_every_kind_is_present(preset, request):
    w = request.getfixturevalue(preset)
    ol, al, rings = w.order_labels, w.account_labels, w.ring_labels
    assert ol["order_id"].sort().equals(w.orders["order_id"].sort())
    assert al["account_id"].sort().equals(w.accounts["account_id"].sort())
    assert ol["order_id"].n_unique() == ol.height and al["account_id"].n_unique() == al.height
    for kind in FRAUD_KINDS:
        assert (rings["kind"] == kind).sum() >= 1, kind
        assert (ol["kind"] == kind).sum() >= 1, kind
    assert ((ol["is_fraud"] == 1) == (ol["kind"] != "honest")).all()
    assert ol.filter(pl.col("is_fraud") == 1)["ring_id"].null_count() == 0
    assert ol.filter(pl.col("is_fraud") == 0)["ring_id"].null_count() == ol.filter(
        pl.col("is_fraud") == 0).height
    assert set(ol.filter(pl.col("is_cover") == 1)["is_fraud"].unique()) <= {1}
    counts = ol.filter(pl.col("ring_id").is_not_null()).group_by("ring_id").len()
    merged = rings.join(counts, on="ring_id", how="left").fill_null(0)
    assert (merged["order_count"] == merged["len"]).all()
    members = rings.filter(pl.col("kind") != "fake_shipping")["members"].str.split(";").explode()
    fraud_accounts = al.filter(pl.col("is_fraud") == 1)["account_id"]
    assert set(members) == set(fraud_accounts)
    share = ol["is_fraud"].mean()
    assert 0.025 <= share <= 0.07, share


def test_honest_crowds_are_present_and_label_only_honest_accounts(world):
    al = world.account_labels
    honest = al.filter(pl.col("is_fraud") == 0)
    sizes = dict(honest.group_by("crowd").len().iter_rows())
    for crowd in CROWDS:
        assert sizes.get(crowd, 0) > 50, crowd
    assert al.filter(pl.col("is_fraud") == 1)["crowd"].null_count() == al["is_fraud"].sum()
    # a campus pick-up point / CGNAT IP links far more accounts than any farm
    o = world.orders.join(al, left_on="buyer_id", right_on="account_id")
    per_ip = o.group_by("ip").agg(pl.col("buyer_id").n_unique().alias("n"),
                                  pl.col("crowd").drop_nulls().mode().first().alias("crowd"))
    assert per_ip.filter(pl.col("crowd").is_in(["campus", "cgnat_mobile"]))["n"].max() >= 60


def test_fake_shipped_orders_are_never_delivered_and_their_waybills_are_suspect(world):
    fs = _labelled(world).filter(pl.col("kind") == "fake_shipping")
    assert fs["delivered_at"].null_count() == fs.height
    assert (fs["buyer_id"].is_in(world.account_labels.filter(pl.col("is_fraud") == 0)[
        "account_id"].implode())).all()


def test_ring_members_do_not_have_neighbouring_ids(world):
    for members in world.ring_labels.filter(pl.col("kind") == "brushing")["members"]:
        ids = np.sort([int(m[1:]) for m in members.split(";")])
        assert np.median(np.diff(ids)) > 1000


def test_easy_farms_are_obvious(easy):
    o = _labelled(easy).filter((pl.col("kind") == "brushing") & (pl.col("is_cover") == 0))
    pay = (o["paid_at"] - o["created_at"]).dt.total_seconds()
    assert pay.median() < 20
    assert (o["review_rating"].drop_nulls() == 5).all()
    assert o["device_id"].n_unique() < o["buyer_id"].n_unique()


# ------------------------------------------------------------------------ the hard preset
def _hl_orders(w) -> pl.DataFrame:
    hl = w.ring_labels.filter((pl.col("kind") == "brushing") & (pl.col("looks_honest") == 1))
    o = _labelled(w).join(
        w.accounts.select("account_id", "registered_at"), left_on="buyer_id",
        right_on="account_id").join(w.products.select("product_id", "price"), on="product_id")
    sec = lambda a, b: (pl.col(a) - pl.col(b)).dt.total_seconds()  # noqa: E731
    return o.select(
        pl.col("ring_id").is_in(hl["ring_id"].implode()).fill_null(False).alias("hl"),
        (pl.col("kind") == "honest").alias("honest"),
        sec("paid_at", "created_at").alias("pay_delay"),
        sec("shipped_at", "paid_at").alias("ship_speed"),
        sec("delivered_at", "shipped_at").alias("delivery_speed"),
        sec("reviewed_at", "delivered_at").alias("review_delay"),
        pl.col("review_rating").alias("review_rating"),
        (pl.col("amount") / pl.col("quantity") / pl.col("price")).alias("unit_price_rel"),
        sec("created_at", "registered_at").alias("account_age"),
        pl.col("created_at").dt.hour().alias("hour"),
    ).filter(pl.col("hl") | pl.col("honest"))


FEATURES = ("pay_delay", "ship_speed", "delivery_speed", "review_delay", "review_rating",
            "unit_price_rel", "account_age", "hour")


@pytest.mark.parametrize("feature", FEATURES)
def test_no_single_behaviour_feature_separates_honest_looking_farms(hard, feature):
    f = _hl_orders(hard).select("hl", feature).drop_nulls()
    y = f["hl"].to_numpy()
    assert y.sum() >= 30
    auc = roc_auc_score(y, f[feature].to_numpy())
    assert max(auc, 1 - auc) <= 0.95, (feature, auc)  # measured ~0.50-0.62


def test_hard_preset_farms_mostly_look_honest_and_use_clean_identities(hard):
    farms = hard.ring_labels.filter(pl.col("kind") == "brushing")
    assert farms["looks_honest"].sum() * 2 >= farms.height
    o = _labelled(hard)
    for ring in farms.filter(pl.col("looks_honest") == 1)["ring_id"]:
        ro = o.filter(pl.col("ring_id") == ring)
        per = ro.group_by("buyer_id").agg(pl.col("device_id").n_unique().alias("d"),
                                          pl.col("ip").n_unique().alias("i"))
        assert (per["d"] == 1).all() and (per["i"] == 1).all()
        assert ro["device_id"].n_unique() == per.height  # no device shared inside the farm
        assert ro["ip"].n_unique() == per.height
        assert ro["address"].n_unique() > 1  # one room, written several ways
    top = o.group_by("product_id").len()["len"].max() / o.height
    assert top <= 0.05


# ------------------------------------------------------------------------ writing
def test_split_days_folders_add_up_to_the_whole_world(tmp_path, world):
    write_world(world, tmp_path / "in", tmp_path / "labels", split_days=True)
    days = sorted(p for p in (tmp_path / "in").iterdir() if p.is_dir())
    assert [d.name for d in days] == [
        (dt.date(2026, 10, 1) + dt.timedelta(i)).isoformat() for i in range(30)]
    orders = pl.concat([pl.read_csv(d / "orders.csv", infer_schema=False).with_columns(
        pl.lit(d.name).alias("night")) for d in days])
    assert orders["order_id"].unique().sort().equals(world.orders["order_id"].sort())
    # an order first appears on the night it was created; later rows are updates
    first = orders.group_by("order_id").agg(pl.col("night").min())
    created = world.orders.select("order_id", pl.col("created_at").dt.date().cast(pl.String))
    assert first.join(created, on="order_id").filter(pl.col("night") != pl.col("created_at")).height == 0
    # nothing a night shows had happened after that night
    for col in ("created_at", "paid_at", "shipped_at", "delivered_at", "refunded_at", "reviewed_at"):
        assert (orders[col].fill_null("").str.slice(0, 10) <= orders["night"]).all(), col
    for d in days[:3]:
        day_orders = pl.read_csv(d / "orders.csv", infer_schema=False)
        day_accounts = pl.read_csv(d / "accounts.csv", infer_schema=False)
        assert day_orders["buyer_id"].is_in(day_accounts["account_id"].implode()).all()
        assert pl.read_csv(d / "products.csv").height == world.products.height
        com = pl.read_csv(d / "commissions.csv", infer_schema=False)
        assert com["order_id"].is_in(day_orders["order_id"].implode()).all()
    labels = pl.read_csv(tmp_path / "labels" / "orders.csv")
    assert labels.height == world.orders.height


def test_a_backfill_then_a_night_shows_what_the_nightly_exports_showed(world):
    day = dt.date(2026, 10, 20)
    backfill = backfill_export(world.orders, world.accounts, world.commissions, world.products,
                               day)
    end = dt.datetime(2026, 10, 21)
    assert backfill["orders"]["created_at"].max() < end
    assert backfill["orders"].height == world.orders.filter(pl.col("created_at") < end).height
    for col in ("paid_at", "shipped_at", "delivered_at", "refunded_at", "reviewed_at"):
        assert (backfill["orders"][col].drop_nulls() < end).all(), col
    # every night folder up to `day`, latest row winning, is the backfill; deriving from a
    # later export instead of the truth (as the scale benchmark does) gives the same rows
    nights = pl.concat([
        night_export(world.orders, world.accounts, world.commissions, world.products,
                     dt.date(2026, 10, 1) + dt.timedelta(i))["orders"].with_columns(night=pl.lit(i))
        for i in range(20)])
    latest = nights.sort("night").unique("order_id", keep="last").drop("night").sort("order_id")
    assert latest.equals(backfill["orders"].sort("order_id"))
    later = night_export(world.orders, world.accounts, world.commissions, world.products,
                         dt.date(2026, 10, 30))
    from_export = backfill_export(later["orders"], world.accounts, world.commissions,
                                  world.products, dt.date(2026, 10, 29))
    from_truth = backfill_export(world.orders.filter(pl.col("order_id").is_in(
        later["orders"]["order_id"].implode())), world.accounts, world.commissions,
        world.products, dt.date(2026, 10, 29))
    derived, truth = from_export["orders"].sort("order_id"), from_truth["orders"].sort("order_id")
    assert derived.drop("status").equals(truth.drop("status"))
    # ... except that a later export no longer tells 'completed' from 'delivered' for an
    # order refunded after the backfill night
    other = derived.with_columns(truth=truth["status"]).filter(pl.col("status") != pl.col("truth"))
    refunded_later = later["orders"].filter(pl.col("refunded_at") >= dt.datetime(2026, 10, 30))
    assert other["order_id"].is_in(refunded_later["order_id"].implode()).all()
    assert other.height <= 0.01 * derived.height
    assert backfill["accounts"]["registered_at"].max() < end
    assert backfill["commissions"]["order_id"].is_in(backfill["orders"]["order_id"].implode()).all()


def test_csv_files_use_the_contract_formats(tmp_path):
    summary = generate_to_folders(tmp_path / "in", tmp_path / "labels", accounts=2000, seed=3)
    assert summary["orders"] > 5000 and summary["orders_by_kind"]["brushing"] > 0
    text = (tmp_path / "in" / "orders.csv").read_text("utf-8").splitlines()
    assert text[0] == ",".join(TABLES["orders"].column_names)
    row = text[1].split(",")
    assert len(row[6]) == 19 and row[6][10] == "T"  # 2026-10-01T00:03:09, no offset
    acc = (tmp_path / "in" / "accounts.csv").read_text("utf-8")
    assert ",true," in acc and ",false," in acc
    for name in ("orders", "accounts", "rings"):
        assert (tmp_path / "labels" / f"{name}.csv").exists()
    assert not (tmp_path / "in" / "rings.csv").exists()
    heads = pl.read_csv(tmp_path / "in" / "orders.csv", infer_schema=False).columns
    assert "is_fraud" not in heads and "kind" not in heads


def test_parquet_output(tmp_path, easy):
    write_world(easy, tmp_path / "in", tmp_path / "labels", fmt="parquet")
    back = pl.read_parquet(tmp_path / "in" / "orders.parquet")
    assert back.equals(easy.orders)
