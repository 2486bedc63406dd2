"""Shared state of one synthetic world: the random generator, the clock, the account store
(struct of numpy arrays), the order blocks and the ring registry.

Times are float seconds since the Unix epoch of naive Asia/Shanghai wall-clock time;
NaN means null.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from orderguard.gen_address import CITIES, CITY_W, AddressBook
from orderguard.gen_text import IpAllocator

H, D = 3600.0, 86400.0

KINDS = ("honest", "brushing", "self_referral", "malicious", "fake_shipping", "deep_chain")
HONEST, BRUSHING, SELF_REFERRAL, MALICIOUS, FAKE_SHIPPING, DEEP_CHAIN = range(6)
ROLES = ("customer", "distributor", "owner", "alt", "worker", "recruit", "competitor")
CUSTOMER, DISTRIBUTOR, OWNER, ALT, WORKER, RECRUIT, COMPETITOR = range(7)
CROWDS = ("", "single", "household", "office", "campus", "cgnat_mobile")
NO_CROWD, SINGLE, HOUSEHOLD, OFFICE, CAMPUS, CGNAT = range(6)
# lifecycle modes of an order
M_HONEST, M_BRUSH, M_MALICIOUS, M_ARBITRAGE = range(4)

# honest shopping by hour of day: low at night, lunch and evening peaks
HOUR_W = np.array([0.9, 0.5, 0.3, 0.2, 0.15, 0.2, 0.4, 1.0, 1.8, 2.4, 2.8, 3.2, 4.0, 3.4,
                   2.8, 2.8, 3.0, 3.2, 3.6, 4.2, 5.0, 5.4, 4.6, 2.6])
PROMO_HOUR_W = HOUR_W * np.r_[[9.0, 3.0, 1.5], np.ones(17), [1.3, 1.4, 1.4, 1.2]]


def epoch(d: dt.date | dt.datetime) -> float:
    if not isinstance(d, dt.datetime):
        d = dt.datetime(d.year, d.month, d.day)
    return (d - dt.datetime(1970, 1, 1)).total_seconds()


class Accounts:
    """Every account of the world as parallel arrays; index = internal account number."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.used = 0
        f = lambda v, t: np.full(n, v, dtype=t)  # noqa: E731
        self.reg = f(np.nan, np.float64)
        self.inviter = f(-1, np.int64)
        self.is_dist = f(False, bool)
        self.phone = f(0, np.int64)
        self.phone_plus86 = f(False, bool)
        self.reg_dev = f(0, np.uint64)
        self.reg_ip = f(0, np.int64)
        self.nick_default = f(0.3, np.float64)
        self.name_src = np.arange(n, dtype=np.int64)
        self.rphone_src = np.arange(n, dtype=np.int64)
        self.rphone_style = f(0, np.int64)
        self.dev1 = f(0, np.uint64)
        self.dev2 = f(0, np.uint64)
        self.p_dev2 = f(0.0, np.float64)
        self.ip_home = f(0, np.int64)
        self.p_home = f(1.0, np.float64)
        self.pool = f(-1, np.int64)
        self.addr_a = f(-1, np.int64)
        self.addr_b = f(-1, np.int64)
        self.p_b = f(0.0, np.float64)
        self.payer1 = f(0, np.uint64)
        self.payer2 = f(0, np.uint64)
        self.p_payer2 = f(0.0, np.float64)
        self.name_alt = f(-1, np.int64)
        self.p_name_alt = f(0.0, np.float64)
        self.city = f(0, np.int64)
        self.dist_shops = np.full((n, 3), -1, dtype=np.int64)
        # labels
        self.fraud = f(False, bool)
        self.kind = f(HONEST, np.int64)
        self.ring = f(-1, np.int64)
        self.role = f(CUSTOMER, np.int64)
        self.looks_honest = f(False, bool)
        self.crowd = f(NO_CROWD, np.int64)

    def take(self, k: int) -> np.ndarray:
        if self.used + k > self.n:
            raise ValueError("account budget exceeded")
        idx = np.arange(self.used, self.used + k)
        self.used += k
        return idx


@dataclass
class Ring:
    ring_id: str
    kind: int
    looks_honest: bool
    members: np.ndarray  # account indices (empty for fake shipping)
    shops: list[int]


@dataclass
class Ctx:
    rng: np.random.Generator
    knobs: dict[str, Any]
    start: float
    days: int
    promo_day: int
    acc: Accounts
    book: AddressBook
    ips: IpAllocator
    blocks: list[dict[str, np.ndarray]] = field(default_factory=list)
    rings: list[Ring] = field(default_factory=list)
    pools: list[np.ndarray] = field(default_factory=list)
    city_pool: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    # catalog, set by gen_catalog.build_catalog
    cat: Any = None
    # fake-shipping shops: shop -> (start time, share faked, defect mode)
    fake_shops: dict[int, tuple[float, float, str]] = field(default_factory=dict)
    viral: list[int] = field(default_factory=list)

    @property
    def end(self) -> float:
        return self.start + self.days * D

    # ---------------------------------------------------------------- pools and ids
    def new_pool(self, size: int) -> int:
        self.pools.append(self.ips.new(size, v6_share=0.25))
        return len(self.pools) - 1

    def make_city_pools(self) -> None:
        sizes = self.rng.integers(4, 13, len(CITIES))
        self.city_pool = np.array([self.new_pool(int(s)) for s in sizes], dtype=np.int64)

    def new_devices(self, n: int) -> np.ndarray:
        return self.rng.integers(1, 2**63 - 1, n, dtype=np.int64).astype(np.uint64)

    def new_payers(self, n: int) -> np.ndarray:
        return self.rng.integers(1, 2**63 - 1, n, dtype=np.int64).astype(np.uint64)

    def random_cities(self, n: int) -> np.ndarray:
        return self.rng.choice(len(CITIES), size=n, p=CITY_W)

    # ---------------------------------------------------------------- time samplers
    def day_weights(self) -> np.ndarray:
        w = np.ones(self.days)
        wd = (np.arange(self.days) + dt.datetime.fromtimestamp(self.start, dt.UTC).weekday()) % 7
        w[wd >= 5] = 1.15
        if 0 <= self.promo_day < self.days:
            w[self.promo_day] = 3.0
            if self.promo_day > 0:
                w[self.promo_day - 1] *= 0.8  # people wait for the promotion
        return w

    def honest_times(self, avail: np.ndarray) -> np.ndarray:
        """Order creation times with the honest day and hour profile, not before `avail`."""
        rng = self.rng
        n = len(avail)
        w = self.day_weights()
        cum = np.r_[0.0, np.cumsum(w)] / w.sum()
        a = np.clip((np.asarray(avail) - self.start) / D, 0, self.days - 1e-6)
        k = a.astype(np.int64)
        lo = cum[k] + (a - k) * (cum[k + 1] - cum[k])
        u = lo + rng.random(n) * (1 - lo)
        day = np.clip(np.searchsorted(cum, u, side="right") - 1, 0, self.days - 1)
        hw = np.tile(HOUR_W / HOUR_W.sum(), (self.days, 1))
        if 0 <= self.promo_day < self.days:
            hw[self.promo_day] = PROMO_HOUR_W / PROMO_HOUR_W.sum()
        hcdf = np.cumsum(hw, axis=1)
        hour = np.minimum((rng.random(n)[:, None] > hcdf[day]).sum(axis=1), 23)
        t = self.start + day * D + hour * H + rng.random(n) * H
        early = t < avail
        t = np.where(early, avail + rng.lognormal(np.log(900), 1.3, n), t)
        return np.minimum(t, self.end - rng.uniform(30, 600, n))

    def sample_reg(self, n: int, new_share: float = 0.12) -> np.ndarray:
        """Registration times of ordinary accounts: mostly aged, some new in the window."""
        rng = self.rng
        aged = self.start - np.clip(rng.lognormal(np.log(300 * D), 1.0, n), 1 * H, 8 * 365 * D)
        new = self.honest_times(np.full(n, self.start))
        new = np.minimum(new, self.end - 3 * H)
        return np.where(rng.random(n) < new_share, new, aged)

    # ---------------------------------------------------------------- orders
    def add_orders(self, buyer, product, created, *, qty=None, referrer=None, mode=M_HONEST,
                   kind=HONEST, ring=-1, cover=False, list_price=False, public=False) -> None:
        n = len(buyer)
        if n == 0:
            return
        full = lambda v, t: np.broadcast_to(np.asarray(v, dtype=t), (n,)).copy()  # noqa: E731
        if qty is None:
            qty = self.honest_qty(n)
        self.blocks.append({
            "buyer": np.asarray(buyer, dtype=np.int64),
            "product": np.asarray(product, dtype=np.int64),
            "created": np.asarray(created, dtype=np.float64),
            "qty": full(qty, np.int64),
            "referrer": full(-1 if referrer is None else referrer, np.int64),
            "mode": full(mode, np.int64),
            "kind": full(kind, np.int64),
            "ring": full(ring, np.int64),
            "cover": full(cover, bool),
            "list_price": full(list_price, bool),
            "public": full(public, bool),
        })

    def honest_qty(self, n: int) -> np.ndarray:
        return self.rng.choice([1, 2, 3, 4, 5, 6], size=n, p=[0.78, 0.13, 0.05, 0.02, 0.015, 0.005])

    def add_ring(self, kind: int, looks_honest: bool, members: np.ndarray, shops: list[int]) -> int:
        prefix = ("", "BR", "SR", "MO", "FS", "DC")[kind]
        number = sum(1 for r in self.rings if r.kind == kind) + 1
        self.rings.append(Ring(f"{prefix}{number:04d}", kind, looks_honest,
                               np.asarray(members, dtype=np.int64), list(shops)))
        return len(self.rings) - 1
