"""Synthetic distribution-shop world with labelled fraud rings and honest look-alike crowds.

    world = generate_world(GeneratorConfig(accounts=5000, seed=7, preset="hard"))
    write_world(world, "data/demo/input", "data/demo/labels")

Input tables follow the data contract (orderguard.contract); labels never enter them.
Same config and seed give byte-identical files. The pieces live in gen_*.py:
gen_catalog (shops, products), gen_people (honest crowds, distributors), gen_fraud (rings),
gen_orders (lifecycle, commissions, assembly), gen_text / gen_address (formatting).

Labels (labels_dir, CSV):
- orders.csv: order_id, is_fraud, kind (honest|brushing|self_referral|malicious|
  fake_shipping|deep_chain), ring_id (empty when honest), is_cover (camouflage purchase by a
  fraud account; still is_fraud=1). is_fraud = the buyer is a fraud account, or the order
  was fake-shipped by its shop (the buyer is then honest).
- accounts.csv: account_id, is_fraud, kind, ring_id, ring_kind, role (customer, distributor,
  owner, alt, worker, recruit, competitor), looks_honest (the ring looks honest account by
  account), crowd (honest only: single, household, office, campus, cgnat_mobile).
  Deep chains: only accounts below level 3 are fraud (kind deep_chain, role recruit); the
  root and levels 1-3 stay honest distributors/customers.
- rings.csv: ring_id, kind, size, looks_honest, members (';'; the shop id for
  fake_shipping), shop_ids, order_count.
- shops.csv (extra): shop_id, shop_type, fake_shipping, level_limit.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from orderguard.contract import ACCOUNTS, COMMISSIONS, ORDERS, PRODUCTS
from orderguard.gen_address import AddressBook
from orderguard.gen_catalog import SHOP_TYPES, build_catalog
from orderguard.gen_core import KINDS, Accounts, Ctx, epoch
from orderguard.gen_fraud import (
    build_brushing,
    build_deep_chains,
    build_fake_shipping,
    build_malicious,
    build_self_referral,
    plan,
)
from orderguard.gen_orders import assemble, honest_orders
from orderguard.gen_people import build_honest
from orderguard.gen_text import IpAllocator

log = logging.getLogger(__name__)

KNOBS = ("honest_looking_share", "device_rotation", "proxy_ips", "aged_accounts",
         "address_variants", "spread_timing", "cover_purchases", "shared_ids")
PRESETS: dict[str, dict[str, Any]] = {
    # no camouflage: every ring shares devices/IPs/payers, lockstep, batch-registered
    "easy": dict(honest_looking_share=0.0, device_rotation=0.0, proxy_ips=0.0,
                 aged_accounts=0.0, address_variants=0.3, spread_timing=0.0,
                 cover_purchases=0.0, shared_ids=(4, 5)),
    "default": dict(honest_looking_share=0.3, device_rotation=0.3, proxy_ips=0.3,
                    aged_accounts=0.4, address_variants=0.7, spread_timing=0.3,
                    cover_purchases=1.0, shared_ids=(2, 4)),
    "hard": dict(honest_looking_share=0.6, device_rotation=0.8, proxy_ips=0.8,
                 aged_accounts=0.9, address_variants=1.0, spread_timing=0.8,
                 cover_purchases=3.0, shared_ids=(1, 2)),
}
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S"


@dataclass
class GeneratorConfig:
    accounts: int = 5000  # number of accounts in the world (honest + fraud)
    seed: int = 7
    preset: str = "default"  # "easy", "default" or "hard"
    days: int = 30
    start: dt.date = dt.date(2026, 10, 1)
    orders_per_account: float = 5.0  # about 1M orders for 200k accounts
    fraud_scale: float = 1.0  # multiplies the number of rings of every kind
    promo_day: dt.date | None = None  # 双11-style day; default 11-11 if inside, else day 11
    # camouflage knobs; None = take the preset's value
    honest_looking_share: float | None = None  # share of brushing farms honest-looking
    device_rotation: float | None = None  # P(ring gives every account its own device)
    proxy_ips: float | None = None  # P(ring gives every account its own IP)
    aged_accounts: float | None = None  # P(ring uses aged accounts, not a batch)
    address_variants: float | None = None  # P(farm writes its address in variants)
    spread_timing: float | None = None  # P(ring spreads orders over the month)
    cover_purchases: float | None = None  # mean cover purchases per fraud account
    shared_ids: tuple[int, int] | None = None  # self-referral: families shared (min, max)

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise ValueError(f"unknown preset {self.preset!r}; use one of {sorted(PRESETS)}")
        if self.accounts < 1000:
            raise ValueError("accounts must be at least 1000 (rings and crowds need room)")
        if self.days < 7:
            raise ValueError("days must be at least 7")

    def knobs(self) -> dict[str, Any]:
        base = dict(PRESETS[self.preset])
        for k in KNOBS:
            v = getattr(self, k)
            if v is not None:
                base[k] = tuple(v) if k == "shared_ids" else float(v)
        return base

    def promo_index(self) -> int:
        if self.promo_day is not None:
            return (self.promo_day - self.start).days
        for year in (self.start.year, self.start.year + 1):
            d = (dt.date(year, 11, 11) - self.start).days
            if 0 <= d < self.days:
                return d
        return min(10, self.days - 1)


@dataclass
class World:
    orders: pl.DataFrame
    accounts: pl.DataFrame
    products: pl.DataFrame
    commissions: pl.DataFrame
    order_labels: pl.DataFrame
    account_labels: pl.DataFrame
    ring_labels: pl.DataFrame
    shop_labels: pl.DataFrame  # shop_id, shop_type, fake_shipping (extra, labels side)
    config: GeneratorConfig | None = None

    def inputs(self) -> dict[str, pl.DataFrame]:
        return {"orders": self.orders, "accounts": self.accounts, "products": self.products,
                "commissions": self.commissions}

    def labels(self) -> dict[str, pl.DataFrame]:
        return {"orders": self.order_labels, "accounts": self.account_labels,
                "rings": self.ring_labels, "shops": self.shop_labels}

    def summary(self) -> dict[str, Any]:
        lab = self.order_labels
        by_kind = dict(lab.group_by("kind").len().sort("kind").iter_rows())
        rings = dict(self.ring_labels.group_by("kind").len().sort("kind").iter_rows())
        fraud = int(lab["is_fraud"].sum())
        return {
            "orders": self.orders.height, "accounts": self.accounts.height,
            "products": self.products.height, "commissions": self.commissions.height,
            "fraud_orders": fraud, "fraud_share": round(fraud / max(1, lab.height), 4),
            "fraud_accounts": int(self.account_labels["is_fraud"].sum()),
            "orders_by_kind": {k: int(by_kind.get(k, 0)) for k in KINDS},
            "rings_by_kind": {k: int(rings.get(k, 0)) for k in KINDS[1:]},
        }


def generate_world(cfg: GeneratorConfig) -> World:
    t0 = time.perf_counter()
    rng = np.random.Generator(np.random.PCG64(cfg.seed))
    n = int(cfg.accounts)
    ctx = Ctx(rng=rng, knobs=cfg.knobs(), start=epoch(cfg.start), days=int(cfg.days),
              promo_day=cfg.promo_index(), acc=Accounts(n), book=AddressBook(rng),
              ips=IpAllocator(rng))
    ctx.make_city_pools()
    p = plan(n, cfg.fraud_scale)
    ctx.cat = build_catalog(rng, max(12, round(n / 400)), p["deep_chain"])
    build_fake_shipping(ctx, p["fake_shipping"])
    build_brushing(ctx, p["brushing"])
    build_self_referral(ctx, p["self_referral"])
    build_malicious(ctx, p["malicious"])
    build_deep_chains(ctx)
    if ctx.acc.used > 0.4 * n:
        raise ValueError("fraud rings would take over 40% of accounts; lower fraud_scale")
    honest = ctx.acc.take(n - ctx.acc.used)
    honest = honest[~ctx.acc.fraud[honest]]
    build_honest(ctx, honest)
    so_far = sum(len(b["created"]) for b in ctx.blocks)
    target = max(cfg.orders_per_account * n - so_far, 0.5 * cfg.orders_per_account * n)
    honest_orders(ctx, honest, target)
    frames = assemble(ctx)
    cat = ctx.cat
    shops = pl.DataFrame({
        "shop_id": cat.shop_ids,
        "shop_type": [SHOP_TYPES[t] for t in cat.shop_type],
        "fake_shipping": [int(i in ctx.fake_shops) for i in range(cat.n_shops)],
        "level_limit": cat.level_limit,
    })
    world = World(
        orders=frames["orders"], accounts=frames["accounts"],
        products=cat.products_frame().select(PRODUCTS.column_names),
        commissions=frames["commissions"], order_labels=frames["order_labels"],
        account_labels=frames["account_labels"], ring_labels=frames["ring_labels"],
        shop_labels=shops, config=cfg,
    )
    log.info("generated %d orders, %d accounts in %.1f s", world.orders.height,
             world.accounts.height, time.perf_counter() - t0)
    return world


# ------------------------------------------------------------------------ writing
def write_table(df: pl.DataFrame, path: Path, fmt: str) -> None:
    """One input table as <path>.csv (timestamps as the contract writes them) or .parquet."""
    if fmt == "parquet":
        df.write_parquet(path.with_suffix(".parquet"))
    else:
        df.write_csv(path.with_suffix(".csv"), datetime_format=TIME_FORMAT, float_precision=2)


def write_world(world: World, out_dir: str | Path, labels_dir: str | Path, fmt: str = "csv",
                split_days: bool = False) -> None:
    """Input tables into out_dir (one folder per day if split_days), labels as CSV."""
    if fmt not in ("csv", "parquet"):
        raise ValueError("fmt must be 'csv' or 'parquet'")
    out, lab = Path(out_dir), Path(labels_dir)
    out.mkdir(parents=True, exist_ok=True)
    lab.mkdir(parents=True, exist_ok=True)
    for name, df in world.labels().items():
        write_table(df, lab / name, "csv")
    if not split_days:
        for name, df in world.inputs().items():
            write_table(df, out / name, fmt)
        return
    orders = world.orders
    cfg = world.config or GeneratorConfig()
    first = orders["created_at"].min().date() if orders.height else cfg.start
    days = cfg.days if world.config else (orders["created_at"].max().date() - first).days + 1
    for i in range(days):
        day = cfg.start + dt.timedelta(days=i) if world.config else first + dt.timedelta(i)
        folder = out / day.isoformat()
        folder.mkdir(parents=True, exist_ok=True)
        tables = night_export(orders, world.accounts, world.commissions, world.products, day)
        for name, df in tables.items():
            write_table(df, folder / name, fmt)


_EVENTS = ("created_at", "paid_at", "shipped_at", "delivered_at", "refunded_at", "reviewed_at")


def night_export(orders: pl.DataFrame, accounts: pl.DataFrame, commissions: pl.DataFrame,
                 products: pl.DataFrame, day: dt.date) -> dict[str, pl.DataFrame]:
    """The export of the night ending `day`: orders created that day, plus a row for every
    older order that changed that day (paid, shipped, delivered, refunded, reviewed), each as
    it stood at midnight (a later night's row for a known order is an update); the accounts
    registered that day or active in those rows. `orders` and `commissions` are the truth or
    any later export of it (the state at midnight is derived from the event times)."""
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time())
    touched = pl.any_horizontal(
        [pl.col(c).dt.date() == day for c in _EVENTS]
    ) & (pl.col("created_at") < end)
    o = orders_as_of(orders.filter(touched), end)
    c = commissions_as_of(commissions, orders, o["order_id"], end)
    active = pl.concat([o["buyer_id"], o["referrer_id"].drop_nulls(), c["beneficiary_id"]]).unique()
    acc = accounts.filter((pl.col("registered_at").dt.date() == day)
                          | pl.col("account_id").is_in(active.implode()))
    return _export_tables(o, acc, c, products)


def backfill_export(orders: pl.DataFrame, accounts: pl.DataFrame, commissions: pl.DataFrame,
                    products: pl.DataFrame, day: dt.date) -> dict[str, pl.DataFrame]:
    """One export of everything up to midnight after `day` (a first night that loads the
    history), each order and commission as it stood then; nights after it are
    `night_export`s."""
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time())
    o = orders_as_of(orders.filter(pl.col("created_at") < end), end)
    c = commissions_as_of(commissions, orders, o["order_id"], end)
    return _export_tables(o, accounts.filter(pl.col("registered_at") < end), c, products)


def _export_tables(orders: pl.DataFrame, accounts: pl.DataFrame, commissions: pl.DataFrame,
                   products: pl.DataFrame) -> dict[str, pl.DataFrame]:
    return {
        "orders": orders.select(ORDERS.column_names),
        "accounts": accounts.select(ACCOUNTS.column_names),
        "commissions": commissions.select(COMMISSIONS.column_names),
        "products": products,
    }


def orders_as_of(orders: pl.DataFrame, end: dt.datetime) -> pl.DataFrame:
    """Each order as the shop's system showed it at `end`: later events not yet happened."""
    def known(col: str) -> pl.Expr:
        return pl.when(pl.col(col) < end).then(pl.col(col)).otherwise(None)

    shipped = pl.col("shipped_at") < end
    return orders.with_columns(
        pl.when(pl.col("refunded_at") < end).then(pl.lit("refunded"))
        .when(pl.col("status") == "cancelled").then(pl.lit("cancelled"))
        .when((pl.col("status") == "completed") & (pl.col("reviewed_at") < end)).then(pl.lit("completed"))
        .when(pl.col("delivered_at") < end).then(pl.lit("delivered"))
        .when(shipped).then(pl.lit("shipped"))
        .when(pl.col("paid_at") < end).then(pl.lit("paid"))
        .otherwise(pl.lit("created")).alias("status"),
        known("paid_at"), known("shipped_at"), known("delivered_at"), known("refunded_at"),
        known("reviewed_at"),
        pl.when(pl.col("refunded_at") < end).then(pl.col("refund_amount")).otherwise(None)
        .alias("refund_amount"),
        pl.when(pl.col("reviewed_at") < end).then(pl.col("review_rating")).otherwise(None)
        .alias("review_rating"),
        pl.when(shipped).then(pl.col("tracking_no")).otherwise(None).alias("tracking_no"),
        pl.when(shipped).then(pl.col("carrier")).otherwise(None).alias("carrier"),
    )


def commissions_as_of(commissions: pl.DataFrame, orders: pl.DataFrame, order_ids: pl.Series,
                      end: dt.datetime) -> pl.DataFrame:
    """Commission rows of tonight's orders as they stood at `end` (pending until settled,
    reversed once the order is refunded)."""
    refunds = orders.select("order_id", "refunded_at")
    return (
        commissions.filter(pl.col("order_id").is_in(order_ids.implode()))
        .join(refunds, on="order_id", how="left")
        .with_columns(
            pl.when((pl.col("status") == "reversed") & (pl.col("refunded_at") < end))
            .then(pl.lit("reversed"))
            .when(pl.col("settled_at") < end).then(pl.lit("settled"))
            .otherwise(pl.lit("pending")).alias("status"),
            pl.when(pl.col("settled_at") < end).then(pl.col("settled_at")).otherwise(None)
            .alias("settled_at"),
        )
    )


def generate_to_folders(out_dir: str | Path, labels_dir: str | Path, accounts: int = 5000,
                        seed: int = 7, preset: str = "default", days: int = 30,
                        fmt: str = "csv", split_days: bool = False) -> dict[str, Any]:
    t0 = time.perf_counter()
    world = generate_world(GeneratorConfig(accounts=accounts, seed=seed, preset=preset,
                                           days=days))
    t1 = time.perf_counter()
    write_world(world, out_dir, labels_dir, fmt=fmt, split_days=split_days)
    summary = world.summary()
    summary.update(preset=preset, seed=seed, generate_seconds=round(t1 - t0, 2),
                   write_seconds=round(time.perf_counter() - t1, 2))
    return summary


__all__ = ["GeneratorConfig", "World", "generate_world", "write_world", "generate_to_folders",
           "night_export", "backfill_export", "write_table",
           "PRESETS"]
