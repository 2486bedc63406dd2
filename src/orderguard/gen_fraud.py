"""Fraud rings: brushing farms, self-referral rings, malicious order floods, fake-shipping
shops and deep recruiting chains, each with camouflage knobs.

Knobs (probabilities per ring unless noted), resolved from the preset:
honest_looking_share (share of farms that look honest account by account), device_rotation,
proxy_ips, aged_accounts, address_variants, spread_timing, cover_purchases (mean cover
orders per fraud account), shared_ids (min, max identifier families a self-referral ring
shares with its owner).
"""

from __future__ import annotations

import math

import numpy as np

from orderguard.gen_address import RESIDENTIAL
from orderguard.gen_core import (
    ALT,
    BRUSHING,
    COMPETITOR,
    CUSTOMER,
    DEEP_CHAIN,
    DISTRIBUTOR,
    FAKE_SHIPPING,
    M_ARBITRAGE,
    M_BRUSH,
    M_HONEST,
    M_MALICIOUS,
    MALICIOUS,
    NO_CROWD,
    OWNER,
    RECRUIT,
    SELF_REFERRAL,
    WORKER,
    Ctx,
    D,
    H,
)
from orderguard.gen_people import assign_shops, init_individuals
from orderguard.gen_text import same_range_phones


def plan(n_accounts: int, scale: float) -> dict[str, int]:
    n = n_accounts * scale
    return {
        "brushing": max(3, round(n / 1000)),
        "self_referral": max(2, round(n / 1000)),
        "malicious": max(2, round(n / 2500)),
        "fake_shipping": max(1, round(n / 4000)),
        "deep_chain": max(1, round(n / 6000)),
    }


def _label(ctx: Ctx, idx: np.ndarray, kind: int, ring: int, role: int, looks: bool) -> None:
    a = ctx.acc
    a.fraud[idx] = True
    a.kind[idx] = kind
    a.ring[idx] = ring
    a.role[idx] = role
    a.looks_honest[idx] = looks
    a.crowd[idx] = NO_CROWD


def _cover(ctx: Ctx, idx: np.ndarray, kind: int, ring: int) -> None:
    """Camouflage purchases of popular products at honest times (still fraud orders)."""
    lam = float(ctx.knobs["cover_purchases"])
    if lam <= 0 or len(idx) == 0:
        return
    k = ctx.rng.poisson(lam, len(idx))
    buyer = np.repeat(idx, k)
    ctx.add_orders(buyer, ctx.cat.sample_global(ctx.rng, len(buyer)),
                   ctx.honest_times(ctx.acc.reg[buyer]), kind=kind, ring=ring, cover=True,
                   public=True)


def _shared(ctx: Ctx, idx: np.ndarray, values: np.ndarray) -> np.ndarray:
    return ctx.rng.choice(values, len(idx))


# ------------------------------------------------------------------------ fake shipping
def build_fake_shipping(ctx: Ctx, n: int) -> None:
    rng, cat = ctx.rng, ctx.cat
    share = cat.shop_share()
    cand = cat.physical_shops()
    cand = cand[~np.isin(cand, cat.deep_shops)]
    cand = cand[np.argsort(-share[cand])][2:]
    cand = cand[len(cand) // 3:] if len(cand) >= 3 else cand  # smaller shops
    n = min(n, len(cand))
    shops = rng.choice(cand, n, replace=False)
    for s in shops:
        t0 = ctx.start + rng.uniform(1, max(2, ctx.days / 3)) * D
        mode = str(rng.choice(["reuse", "invalid", "mixed"], p=[0.5, 0.25, 0.25]))
        # fake a share of the shop's later orders: about 0.6% of all orders in all
        left = 1 - (t0 - ctx.start) / (ctx.days * D)
        p = float(np.clip(0.006 / n / (share[s] * left) * rng.uniform(0.7, 1.3), 0.1, 0.9))
        ctx.fake_shops[int(s)] = (t0, p, mode)
        ctx.add_ring(FAKE_SHIPPING, False, np.zeros(0, np.int64), [int(s)])


def _free_physical(ctx: Ctx) -> np.ndarray:
    s = ctx.cat.physical_shops()
    return s[~np.isin(s, list(ctx.fake_shops) + ctx.cat.deep_shops)]


# ------------------------------------------------------------------------ brushing farms
def build_brushing(ctx: Ctx, n: int) -> None:
    rng, a, cat, kn = ctx.rng, ctx.acc, ctx.cat, ctx.knobs
    n_hl = math.ceil(kn["honest_looking_share"] * n) if kn["honest_looking_share"] > 0 else 0
    hl_flags = rng.permutation(np.r_[np.ones(n_hl, bool), np.zeros(n - n_hl, bool)])
    phys = _free_physical(ctx)
    share = cat.shop_share()
    for hl in hl_flags:
        size = int(rng.integers(8, 41))
        idx = a.take(size)
        cam = {k: bool(hl or rng.random() < kn[k]) for k in (
            "device_rotation", "proxy_ips", "aged_accounts", "address_variants", "spread_timing")}
        city = int(ctx.random_cities(1)[0])
        init_individuals(ctx, idx, np.full(size, city))
        ring = ctx.add_ring(BRUSHING, bool(hl), idx, [])
        # targets: 1-2 ordinary products in each of 1-3 shops
        w = np.sqrt(share[phys])
        shops = rng.choice(phys, min(len(phys), int(rng.integers(1, 4))), replace=False,
                           p=w / w.sum())
        targets = []
        for s in shops:
            prods = np.flatnonzero(cat.prod_shop == s)
            pw = np.sqrt(cat.p[prods]) + 1e-12
            targets += list(rng.choice(prods, min(len(prods), int(rng.integers(1, 3))),
                                       replace=False, p=pw / pw.sum()))
        targets = np.array(targets[:4])
        ctx.rings[ring].shops = [int(s) for s in shops]
        # one real room, written by each account its own way (or one string for all)
        ent = ctx.book.new(RESIDENTIAL, np.array([city]))
        if cam["address_variants"]:
            a.addr_a[idx] = ctx.book.request(np.repeat(ent, size))
        else:
            a.addr_a[idx] = ctx.book.request(ent)[0]
        a.addr_b[idx] = -1
        a.pool[idx] = -1
        a.p_home[idx] = 1.0
        a.dev2[idx] = 0
        a.p_dev2[idx] = 0.0
        a.payer2[idx] = 0
        if cam["aged_accounts"]:
            a.reg[idx] = ctx.sample_reg(size)
        else:
            t_batch = ctx.start + rng.uniform(-12, ctx.days * 0.4) * D
            a.reg[idx] = t_batch + np.cumsum(rng.uniform(20, 400, size))
            a.nick_default[idx] = 0.9
        if not hl:
            if not cam["device_rotation"]:
                devs = ctx.new_devices(int(rng.integers(1, 4)))
                a.dev1[idx] = _shared(ctx, idx, devs)
                a.dev2[idx] = _shared(ctx, idx, devs)
                a.p_dev2[idx] = 0.4 if len(devs) > 1 else 0.0
                a.reg_dev[idx] = _shared(ctx, idx, devs)
                pay = ctx.new_payers(int(rng.integers(1, 3)))
                a.payer1[idx] = _shared(ctx, idx, pay)
                a.phone[idx] = same_range_phones(rng, np.repeat(a.phone[idx[0]], size))
                a.rphone_src[idx] = _shared(ctx, idx, idx[: int(rng.integers(2, 4))])
                a.name_src[idx] = _shared(ctx, idx, idx[: int(rng.integers(3, 6))])
            if not cam["proxy_ips"]:
                ips = ctx.ips.new(int(rng.integers(1, 3)), v6_share=0.0)
                a.ip_home[idx] = _shared(ctx, idx, ips)
                a.reg_ip[idx] = _shared(ctx, idx, ips)
        else:
            # registered like anyone else: the registration IP is the home line only
            # sometimes (orders always come from it, so keep the overlap honest-like)
            home = rng.random(size) < 0.25
            a.reg_ip[idx] = np.where(home, a.ip_home[idx], a.reg_ip[idx])
            other = (a.reg_ip[idx] == a.ip_home[idx]) & ~home
            a.reg_ip[idx] = np.where(other, ctx.ips.new(size), a.reg_ip[idx])
        _label(ctx, idx, BRUSHING, ring, WORKER, bool(hl))

        if hl:
            k = 1 + rng.poisson(1.6, size)
            buyer = np.repeat(idx, k)
            ctx.add_orders(buyer, rng.choice(targets, len(buyer)),
                           ctx.honest_times(a.reg[buyer]), kind=BRUSHING, ring=ring,
                           public=True)
        elif cam["spread_timing"]:
            k = rng.integers(2, 6, size)
            buyer = np.repeat(idx, k)
            ctx.add_orders(buyer, rng.choice(targets, len(buyer)),
                           ctx.honest_times(a.reg[buyer]), qty=1, mode=M_BRUSH,
                           kind=BRUSHING, ring=ring, list_price=True)
        else:
            _lockstep(ctx, idx, targets, ring)
        _cover(ctx, idx, BRUSHING, ring)


def _lockstep(ctx: Ctx, idx: np.ndarray, targets: np.ndarray, ring: int) -> None:
    """Rounds: on a few days the operator walks through the accounts minutes apart."""
    rng, a = ctx.rng, ctx.acc
    d0 = int(max(0, math.ceil((a.reg[idx].max() - ctx.start) / D)))
    days = np.arange(d0, ctx.days)
    if len(days) == 0:
        days = np.array([ctx.days - 1])
    rounds = np.sort(rng.choice(days, min(len(days), int(rng.integers(3, 9))), replace=False))
    buyers, created, prods = [], [], []
    for d in rounds:
        who = rng.permutation(idx)[rng.random(len(idx)) < 0.85]
        t0 = ctx.start + d * D + rng.uniform(9, 23) * H
        t = t0 + np.cumsum(rng.uniform(40, 240, len(who)))
        t = np.maximum(t, a.reg[who] + 600)
        keep = t < ctx.end - 60
        buyers.append(who[keep])
        created.append(t[keep])
        prods.append(np.full(keep.sum(), rng.choice(targets)))
    ctx.add_orders(np.concatenate(buyers), np.concatenate(prods), np.concatenate(created),
                   qty=1, mode=M_BRUSH, kind=BRUSHING, ring=ring, list_price=True)


# ------------------------------------------------------------------------ self-referral
def build_self_referral(ctx: Ctx, n: int) -> None:
    rng, a, cat, kn = ctx.rng, ctx.acc, ctx.cat, ctx.knobs
    lo, hi = kn["shared_ids"]
    for _ in range(n):
        m = int(rng.integers(2, 9))
        idx = a.take(1 + m)
        owner, alts = idx[0], idx[1:]
        city = int(ctx.random_cities(1)[0])
        init_individuals(ctx, idx, np.full(1 + m, city))
        a.reg[owner] = ctx.start - np.clip(rng.lognormal(np.log(200 * D), 0.8), 30 * D, 2000 * D)
        a.is_dist[owner] = True
        assign_shops(ctx, np.array([owner]))
        a.dist_shops[owner, 2] = -1
        ring = ctx.add_ring(SELF_REFERRAL, False, idx, [int(s) for s in a.dist_shops[owner]
                                                         if s >= 0])
        # who invited whom: the owner, or a chain of alts to collect L2/L3
        inv = np.full(m, owner)
        if rng.random() < 0.4 and m >= 2:
            depth = min(m, int(rng.integers(2, 4)))
            inv[1:depth] = alts[: depth - 1]
        a.inviter[alts] = inv
        inviting = np.unique(inv)
        a.is_dist[inviting] = True
        a.dist_shops[inviting] = a.dist_shops[owner]
        # identifier families shared with the owner
        fam = set(rng.choice(5, int(rng.integers(lo, hi + 1)), replace=False).tolist())
        aged = rng.random() < kn["aged_accounts"]
        if 0 in fam:  # device
            a.dev1[alts] = a.dev1[owner]
            a.dev2[alts] = 0
            a.reg_dev[alts] = np.where(rng.random(m) < 0.8, a.dev1[owner], a.reg_dev[alts])
        if 1 in fam:  # phone range
            a.phone[alts] = same_range_phones(rng, np.repeat(a.phone[owner], m))
        if 2 in fam:  # registration IP / home network
            a.reg_ip[alts] = a.ip_home[owner]
            a.ip_home[alts] = a.ip_home[owner]
        if 3 in fam:  # address
            ent = ctx.book.new(RESIDENTIAL, np.array([city]))
            a.addr_a[owner] = ctx.book.request(ent)[0]
            same = rng.random() < 0.5
            a.addr_a[alts] = (a.addr_a[owner] if same
                              else ctx.book.request(np.repeat(ent, m)))
        if 4 in fam:  # payer
            a.payer1[alts] = a.payer1[owner]
            a.payer2[alts] = 0
        if aged:
            a.reg[alts] = np.sort(ctx.start - rng.uniform(20, 300, m) * D)
        else:
            t0 = ctx.start + rng.uniform(-3, ctx.days * 0.35) * D
            a.reg[alts] = t0 + np.cumsum(rng.uniform(60, 900, m))
            a.nick_default[alts] = 0.6
        looks = len(fam) <= 1 and aged
        _label(ctx, np.array([owner]), SELF_REFERRAL, ring, OWNER, looks)
        _label(ctx, alts, SELF_REFERRAL, ring, ALT, looks)
        # alts buy high-commission products through the inviter's share link
        shops = a.dist_shops[owner][a.dist_shops[owner] >= 0]
        # the priciest products earn the most commission per order
        prods = np.flatnonzero(np.isin(cat.prod_shop, shops))
        prods = prods[~np.isin(prods, cat.entry_products)]
        prods = prods[cat.price[prods] >= np.quantile(cat.price[prods], 0.7)]
        k = rng.integers(2, 7, m)
        buyer = np.repeat(alts, k)
        if rng.random() < kn["spread_timing"]:
            created = ctx.honest_times(a.reg[buyer])
        else:
            j = np.concatenate([np.arange(x) for x in k])
            first = np.maximum(a.reg[alts], ctx.start + rng.uniform(0, ctx.days * 0.35) * D)
            created = (np.repeat(first, k) + rng.lognormal(np.log(2 * H), 1.0, len(buyer))
                       + j * rng.uniform(0.5, 2.5, len(buyer)) * D)
            created = np.minimum(created, ctx.end - rng.uniform(60, 3 * H, len(buyer)))
        # most rings refund after the commission settles (佣金套利); some just keep the goods
        arbitrage = rng.random(len(buyer)) < rng.uniform(0.2, 0.9)
        ctx.add_orders(buyer, rng.choice(prods, len(buyer)), created,
                       referrer=a.inviter[buyer],
                       mode=np.where(arbitrage, M_ARBITRAGE, M_HONEST), kind=SELF_REFERRAL,
                       ring=ring)
        _cover(ctx, idx, SELF_REFERRAL, ring)


# ------------------------------------------------------------------------ malicious floods
def build_malicious(ctx: Ctx, n: int) -> None:
    rng, a, cat, kn = ctx.rng, ctx.acc, ctx.cat, ctx.knobs
    phys = _free_physical(ctx)
    share = cat.shop_share()
    for _ in range(n):
        k = int(rng.integers(2, 7))
        idx = a.take(k)
        init_individuals(ctx, idx, ctx.random_cities(k))
        ring = ctx.add_ring(MALICIOUS, False, idx, [])
        shop = int(rng.choice(phys, p=share[phys] / share[phys].sum()))
        ctx.rings[ring].shops = [shop]
        t0 = ctx.start + rng.uniform(1, ctx.days - 1.5) * D
        cam = {x: bool(rng.random() < kn[x]) for x in (
            "device_rotation", "proxy_ips", "aged_accounts", "spread_timing")}
        if cam["aged_accounts"]:
            a.reg[idx] = ctx.sample_reg(k, new_share=0.0)
        else:
            a.reg[idx] = t0 - rng.uniform(0.3, 5) * D + np.cumsum(rng.uniform(30, 600, k))
            a.nick_default[idx] = 0.8
        a.dev2[idx] = 0
        a.pool[idx] = -1
        a.p_home[idx] = 1.0
        if not cam["device_rotation"]:
            devs = ctx.new_devices(int(rng.integers(1, 4)))
            a.dev1[idx] = _shared(ctx, idx, devs)
            a.reg_dev[idx] = a.dev1[idx]
            a.payer1[idx] = _shared(ctx, idx, ctx.new_payers(int(rng.integers(1, 3))))
            a.payer2[idx] = 0
        if not cam["proxy_ips"]:
            ips = ctx.ips.new(int(rng.integers(1, 3)), v6_share=0.0)
            a.ip_home[idx] = _shared(ctx, idx, ips)
            a.reg_ip[idx] = _shared(ctx, idx, ips)
        _label(ctx, idx, MALICIOUS, ring, COMPETITOR, all(cam.values()))
        span = rng.uniform(12, 48) * H if cam["spread_timing"] else rng.uniform(1, 6) * H
        no = int(rng.integers(20, 71))
        created = np.minimum(t0 + np.sort(rng.uniform(0, span, no)),
                             ctx.end - rng.uniform(60, 1800, no))
        buyer = rng.choice(idx, no)
        created = np.maximum(created, a.reg[buyer] + rng.uniform(60, 3600, no))
        prods = np.flatnonzero(cat.prod_shop == shop)
        prods = prods[np.argsort(-cat.p[prods])][: int(rng.integers(1, 4))]
        qty = rng.integers(2, 11, no) if cam["spread_timing"] else rng.integers(5, 51, no)
        ctx.add_orders(buyer, rng.choice(prods, no), created, qty=qty, mode=M_MALICIOUS,
                       kind=MALICIOUS, ring=ring, list_price=True)
        _cover(ctx, idx, MALICIOUS, ring)


# ------------------------------------------------------------------------ deep chains
def build_deep_chains(ctx: Ctx) -> None:
    rng, a, cat = ctx.rng, ctx.acc, ctx.cat
    for s, entry in zip(cat.deep_shops, cat.entry_products, strict=True):
        levels = int(rng.integers(5, 9))
        parent = [-1]
        depth = [0]
        frontier = [0]
        for lv in range(1, levels + 1):
            nxt = []
            for i, p in enumerate(frontier):
                kids = int(rng.integers(2, 5)) if lv == 1 else (
                    int(min(1 + rng.geometric(0.5), 4)) if rng.random() < 0.55 else 0)
                if i == 0:
                    kids = max(kids, 1)
                if len(parent) + kids > 90:
                    kids = 1 if i == 0 else 0
                for _ in range(kids):
                    parent.append(p)
                    depth.append(lv)
                    nxt.append(len(parent) - 1)
            frontier = nxt
        parent_a, depth_a = np.array(parent), np.array(depth)
        size = len(parent_a)
        idx = a.take(size)
        city = np.where(rng.random(size) < 0.5, ctx.random_cities(1)[0], ctx.random_cities(size))
        init_individuals(ctx, idx, city)
        reg = np.empty(size)
        reg[0] = ctx.start - np.clip(rng.lognormal(np.log(200 * D), 0.8), 30 * D, 2000 * D)
        t0 = ctx.start + rng.uniform(0, max(1, ctx.days - 12)) * D
        for i in range(1, size):  # parents come before children
            base = t0 if depth_a[i] == 1 else reg[parent_a[i]]
            reg[i] = base + rng.lognormal(np.log(8 * H), 0.9)
        reg = np.minimum(reg, ctx.end - rng.uniform(2, 6, size) * H)
        a.reg[idx] = reg
        a.inviter[idx[1:]] = idx[parent_a[1:]]
        has_kids = np.isin(np.arange(size), parent_a[1:])
        a.is_dist[idx[has_kids]] = True
        a.dist_shops[idx[has_kids], 0] = s
        a.dist_shops[idx[has_kids], 1:] = -1
        deep = depth_a >= 4
        ring = ctx.add_ring(DEEP_CHAIN, True, idx[deep], [s])
        _label(ctx, idx[deep], DEEP_CHAIN, ring, RECRUIT, True)
        upper = idx[~deep]
        a.role[upper] = np.where(has_kids[~deep], DISTRIBUTOR, CUSTOMER)
        # joining means buying the entry package through the inviter's link
        members = np.arange(1, size)
        kinds = np.where(deep[members], DEEP_CHAIN, 0)
        rings = np.where(deep[members], ring, -1)
        b = idx[members]
        first = reg[members] + rng.lognormal(np.log(40 * 60), 1.0, len(b))
        first = np.minimum(first, ctx.end - rng.uniform(60, 3600, len(b)))
        for kd in (0, DEEP_CHAIN):
            sel = kinds == kd
            ctx.add_orders(b[sel], np.full(sel.sum(), entry), first[sel], qty=1,
                           referrer=a.inviter[b[sel]], kind=kd, ring=int(rings[sel][0])
                           if sel.any() else -1, mode=M_HONEST)
            again = sel & (rng.random(len(b)) < 0.3)
            ctx.add_orders(b[again], cat.sample_in_shop(rng, np.full(again.sum(), s)),
                           ctx.honest_times(reg[members][again]),
                           referrer=a.inviter[b[again]], kind=kd,
                           ring=int(rings[again][0]) if again.any() else -1)
