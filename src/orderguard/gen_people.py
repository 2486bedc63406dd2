"""Honest people: identities, the crowds that look alike (households, offices, campuses and
parcel stations, mobile carrier-grade NAT) and honest distributors with referral trees.
"""

from __future__ import annotations

import numpy as np

from orderguard.gen_address import OFFICE as E_OFFICE
from orderguard.gen_address import RESIDENTIAL, STATION
from orderguard.gen_core import (
    CAMPUS,
    CGNAT,
    CUSTOMER,
    DISTRIBUTOR,
    HOUSEHOLD,
    OFFICE,
    SINGLE,
    Ctx,
    D,
    H,
)
from orderguard.gen_text import PHONE_STYLE_P, phone_numbers

SAVED_PHONE_P = PHONE_STYLE_P[:6] / PHONE_STYLE_P[:6].sum()


def pool_pick(ctx: Ctx, pools: np.ndarray) -> np.ndarray:
    """One random IP of each given pool."""
    sizes = np.array([len(p) for p in ctx.pools])
    flat = np.concatenate(ctx.pools)
    starts = np.r_[0, np.cumsum(sizes)[:-1]]
    pools = np.asarray(pools, dtype=np.int64)
    return flat[starts[pools] + (ctx.rng.random(len(pools)) * sizes[pools]).astype(np.int64)]


def init_individuals(ctx: Ctx, idx: np.ndarray, city: np.ndarray,
                     reg: np.ndarray | None = None) -> None:
    """Give each account an identity of its own (one person, one home)."""
    rng, a, n = ctx.rng, ctx.acc, len(idx)
    if n == 0:
        return
    a.city[idx] = city
    a.reg[idx] = ctx.sample_reg(n) if reg is None else reg
    a.phone[idx] = phone_numbers(rng, n)
    a.phone_plus86[idx] = rng.random(n) < 0.05
    a.rphone_style[idx] = rng.choice(6, n, p=SAVED_PHONE_P)
    d1 = ctx.new_devices(n)
    a.dev1[idx] = d1
    has2 = rng.random(n) < 0.3
    a.dev2[idx] = np.where(has2, ctx.new_devices(n), 0)
    a.p_dev2[idx] = np.where(has2, rng.uniform(0.05, 0.4, n), 0.0)
    home = ctx.ips.new(n)
    a.ip_home[idx] = home
    wifi_only = rng.random(n) < 0.25  # home broadband / Wi-Fi shoppers: one IP all month
    a.p_home[idx] = np.where(wifi_only, rng.uniform(0.97, 1.0, n), rng.uniform(0.4, 0.75, n))
    a.pool[idx] = ctx.city_pool[city]
    a.addr_a[idx] = ctx.book.request(ctx.book.new(RESIDENTIAL, city))
    a.addr_b[idx] = -1
    a.payer1[idx] = ctx.new_payers(n)
    has_p2 = rng.random(n) < 0.15
    a.payer2[idx] = np.where(has_p2, ctx.new_payers(n), 0)
    a.p_payer2[idx] = np.where(has_p2, rng.uniform(0.1, 0.5, n), 0.0)
    a.reg_dev[idx] = np.where(rng.random(n) < 0.75, d1, ctx.new_devices(n))
    u = rng.random(n)
    a.reg_ip[idx] = np.where(u < 0.4, home, np.where(u < 0.7, pool_pick(ctx, ctx.city_pool[city]),
                                                     ctx.ips.new(n)))
    a.nick_default[idx] = 0.3
    a.crowd[idx] = SINGLE


def _groups(rng: np.random.Generator, total: int, sizer) -> np.ndarray:
    sizes = []
    s = 0
    while s < total:
        k = int(sizer())
        sizes.append(k)
        s += k
    return np.array(sizes, dtype=np.int64)


def build_honest(ctx: Ctx, idx: np.ndarray) -> None:
    """Crowds, identities, registrations and shopping activity of the honest accounts."""
    rng, a, book = ctx.rng, ctx.acc, ctx.book
    idx = rng.permutation(idx)
    nh = len(idx)
    init_individuals(ctx, idx, ctx.random_cities(nh))
    pos = 0

    # households: 2-4 accounts, one flat, one broadband IP, sometimes one device or payer
    sizes = _groups(rng, int(0.25 * nh), lambda: rng.choice([2, 3, 4], p=[0.4, 0.35, 0.25]))
    pos = _households(ctx, idx, pos, sizes)
    # offices: 10-60 colleagues shipping to one office room, one egress IP
    sizes = _groups(rng, int(0.12 * nh), lambda: rng.integers(10, 61))
    for k in sizes:
        m = idx[pos: pos + k]
        pos += len(m)
        if len(m) == 0:
            break
        city = ctx.random_cities(1)[0]
        a.city[m] = city
        a.pool[m] = ctx.city_pool[city]
        ent = book.new(E_OFFICE, np.array([city]))
        home = a.addr_a[m].copy()
        shared = rng.random() < 0.2
        a.addr_a[m] = book.request(np.repeat(ent, 1 if shared else len(m)))
        keep_home = rng.random(len(m)) < 0.3
        a.addr_b[m] = np.where(keep_home, home, -1)
        a.p_b[m] = np.where(keep_home, rng.uniform(0.1, 0.4, len(m)), 0.0)
        egress = ctx.ips.new(int(rng.integers(1, 3)), v6_share=0.0)
        a.ip_home[m] = rng.choice(egress, len(m))
        a.p_home[m] = rng.uniform(0.4, 0.7, len(m))
        a.crowd[m] = OFFICE
    # campuses and parcel stations: hundreds share one pick-up point
    camp = int(np.clip(0.03 * nh, 60, 600))
    sizes = _groups(rng, int(0.10 * nh), lambda: int(camp * rng.uniform(0.6, 1.4)))
    for k in sizes:
        m = idx[pos: pos + k]
        pos += len(m)
        if len(m) == 0:
            break
        city = ctx.random_cities(1)[0]
        a.city[m] = city
        a.pool[m] = ctx.city_pool[city]
        ent = book.new(STATION, np.array([city]))
        a.addr_a[m] = book.request(np.repeat(ent, len(m)))
        nat = ctx.ips.new(int(rng.integers(2, 5)), v6_share=0.0)
        a.ip_home[m] = rng.choice(nat, len(m))
        a.p_home[m] = rng.uniform(0.5, 0.85, len(m))
        a.reg[m] = ctx.sample_reg(len(m), new_share=0.2)
        a.crowd[m] = CAMPUS
    # mobile-only shoppers behind carrier-grade NAT: thousands share a few IPs per city
    k = int(0.2 * nh)
    m = idx[pos: pos + k]
    pos += len(m)
    a.p_home[m] = rng.uniform(0.0, 0.1, len(m))
    a.crowd[m] = CGNAT

    build_distributors(ctx, idx)


def _households(ctx: Ctx, idx: np.ndarray, pos: int, sizes: np.ndarray) -> int:
    rng, a, book = ctx.rng, ctx.acc, ctx.book
    total = int(min(sizes.sum(), len(idx) - pos))
    m = idx[pos: pos + total]
    g = np.repeat(np.arange(len(sizes)), sizes)[:total]
    ng = int(g.max()) + 1 if total else 0
    if ng == 0:
        return pos
    first = np.r_[0, np.flatnonzero(np.diff(g)) + 1]
    city = ctx.random_cities(ng)
    a.city[m] = city[g]
    a.pool[m] = ctx.city_pool[city[g]]
    ent = book.new(RESIDENTIAL, city)
    same_string = rng.random(ng) < 0.5
    per_group = book.request(ent)
    per_member = book.request(ent[g])
    a.addr_a[m] = np.where(same_string[g], per_group[g], per_member)
    a.ip_home[m] = ctx.ips.new(ng)[g]
    a.p_home[m] = rng.uniform(0.5, 0.8, total)
    fam_dev = ctx.new_devices(ng)
    u = rng.random(ng)
    dev_tab = u < 0.3
    a.dev2[m] = np.where(dev_tab[g], fam_dev[g], a.dev2[m])
    a.p_dev2[m] = np.where(dev_tab[g], 0.3, a.p_dev2[m])
    one_phone = (u >= 0.3) & (u < 0.4)
    a.dev1[m] = np.where(one_phone[g], fam_dev[g], a.dev1[m])
    shared_reg = (dev_tab | one_phone)[g] & (rng.random(total) < 0.4)
    a.reg_dev[m] = np.where(shared_reg, fam_dev[g], a.reg_dev[m])
    fam_pay = ctx.new_payers(ng)
    pays = rng.random(ng) < 0.35
    a.payer2[m] = np.where(pays[g], fam_pay[g], a.payer2[m])
    a.p_payer2[m] = np.where(pays[g], 0.5, a.p_payer2[m])
    nxt = np.arange(total) + 1
    ends = np.r_[first[1:], total]
    nxt = np.where(nxt == ends[g], first[g], nxt)
    a.name_alt[m] = m[nxt]
    a.p_name_alt[m] = 0.2
    a.crowd[m] = HOUSEHOLD
    return pos + total


def assign_shops(ctx: Ctx, d: np.ndarray, one: bool = False) -> None:
    """Programme shops each distributor promotes (1-3, by shop popularity)."""
    rng, cat = ctx.rng, ctx.cat
    prog = np.flatnonzero(cat.programme)
    prog = prog[~np.isin(prog, cat.deep_shops)]
    w = cat.shop_share()[prog]
    w = w / w.sum()
    k = np.ones(len(d), dtype=np.int64) if one else rng.choice([1, 2, 3], len(d), p=[.5, .3, .2])
    ds = ctx.acc.dist_shops
    for j in range(3):
        pick_ = rng.choice(prog, len(d), p=w)
        dup = (ds[d, :j] == pick_[:, None]).any(axis=1)
        ds[d, j] = np.where((j < k) & ~dup, pick_, -1)


def build_distributors(ctx: Ctx, idx: np.ndarray) -> None:
    """Honest referral trees (depth <= 3), with one or two viral distributors."""
    rng, a = ctx.rng, ctx.acc
    nh = len(idx)
    aged = idx[a.reg[idx] < ctx.start - 30 * D]
    n_roots = max(3, round(0.006 * nh))
    roots = rng.choice(aged, min(n_roots, len(aged)), replace=False)
    n_viral = 1 if nh < 20_000 else 2
    pool = rng.permutation(np.setdiff1d(idx, roots))
    ptr = 0
    fan = 1 + np.minimum(rng.geometric(0.3, len(roots)), 24)
    fan[:n_viral] = int(np.clip(0.02 * nh, 40, 2500))
    level = roots
    counts = fan
    viral_start = ctx.start + rng.uniform(2, max(3, ctx.days - 8)) * D
    for depth in (1, 2, 3):
        parents = np.repeat(level, counts)
        kids = pool[ptr: ptr + len(parents)]
        parents = parents[: len(kids)]
        ptr += len(kids)
        if len(kids) == 0:
            break
        a.inviter[kids] = parents
        a.is_dist[parents] = True
        a.role[parents] = DISTRIBUTOR
        preg = a.reg[parents]
        late = a.reg[kids] <= preg
        new = preg + np.clip(rng.lognormal(np.log(3 * D), 1.3, len(kids)), 600, 400 * D)
        if depth == 1:
            viral = np.isin(parents, roots[:n_viral])
            burst = np.maximum(viral_start + rng.exponential(4 * D, len(kids)), preg + 600)
            new = np.where(viral, burst, new)
            late = late | (viral & (rng.random(len(kids)) < 0.7))
        bad = new > ctx.end - 2 * H
        new = np.where(bad, preg + rng.random(len(kids)) * (ctx.end - 2 * H - preg), new)
        a.reg[kids] = np.where(late, new, a.reg[kids])
        grow = rng.random(len(kids)) < (0.3 if depth == 1 else 0.2)
        level = kids[grow]
        counts = 1 + np.minimum(rng.geometric(0.4, len(level)), 14)
    dists = np.flatnonzero(a.is_dist[idx])
    assign_shops(ctx, idx[dists])
    assign_shops(ctx, roots[:n_viral], one=True)
    # distributors who only share links publicly (no invitees)
    extra = rng.choice(idx, max(2, round(0.01 * nh)), replace=False)
    extra = extra[~a.is_dist[extra]]
    a.is_dist[extra] = True
    a.role[extra] = DISTRIBUTOR
    assign_shops(ctx, extra)
    a.role[idx[~a.is_dist[idx]]] = CUSTOMER
    ctx.viral = [int(r) for r in roots[:n_viral]]
