"""Orders: honest shopping, the order lifecycle (pay, ship, deliver, confirm, review, refund),
fake shipping, commissions, and assembly of all tables as polars DataFrames.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from orderguard.contract import ACCOUNTS, COMMISSIONS, ORDERS
from orderguard.gen_core import (
    CAMPUS,
    CGNAT,
    CROWDS,
    FAKE_SHIPPING,
    KINDS,
    M_ARBITRAGE,
    M_BRUSH,
    M_HONEST,
    M_MALICIOUS,
    ROLES,
    Ctx,
    D,
    H,
)
from orderguard.gen_people import pool_pick
from orderguard.gen_text import (
    CARRIER_DAYS,
    carrier_names,
    device_strings,
    ip_strings,
    nicknames,
    payer_strings,
    person_names,
    phone_strings,
    random_waybill_numbers,
    waybill_strings,
)

NAN = np.nan
RATING_P = np.array([0.05, 0.03, 0.06, 0.14, 0.72])
LEVEL_RATES = np.array([0.10, 0.05, 0.03] + [0.02] * 7)


# ------------------------------------------------------------------------ honest shopping
def honest_orders(ctx: Ctx, idx: np.ndarray, target: float) -> None:
    """Heavy-tailed activity; favourite shops; orders through the inviter's share link."""
    rng, a, cat = ctx.rng, ctx.acc, ctx.cat
    n = len(idx)
    act = np.minimum(rng.lognormal(0.0, 1.1, n), 20.0)
    act *= np.where(a.crowd[idx] == CAMPUS, 1.2, np.where(a.crowd[idx] == CGNAT, 0.9, 1.0))
    w = ctx.day_weights()
    cum = np.r_[0.0, np.cumsum(w)] / w.sum()
    av = np.clip((np.maximum(a.reg[idx], ctx.start) - ctx.start) / D, 0, ctx.days - 1e-6)
    k = av.astype(np.int64)
    frac = 1 - (cum[k] + (av - k) * (cum[k + 1] - cum[k]))
    lam = act * frac
    counts = rng.poisson(lam * target / lam.sum())
    buyer = np.repeat(idx, counts)
    m = len(buyer)
    created = ctx.honest_times(a.reg[buyer])
    # a new account often buys right after signing up (through the link it came from)
    first = np.r_[0, np.cumsum(counts)[:-1]][counts > 0]
    fb = buyer[first]
    new = a.reg[fb] >= ctx.start
    soon = new & (rng.random(len(first)) < np.where(a.inviter[fb] >= 0, 0.6, 0.4))
    t = a.reg[fb] + rng.lognormal(np.log(1800), 1.2, len(first))
    created[first] = np.where(soon & (t < ctx.end - 600), t, created[first])
    fav = rng.choice(cat.n_shops, n, p=cat.shop_share())
    fav_of = np.zeros(a.n, dtype=np.int64)
    fav_of[idx] = fav
    inv = a.inviter[buyer]
    inv_ok = inv >= 0
    inv_c = np.where(inv_ok, inv, 0)
    nshops = (a.dist_shops[inv_c] >= 0).sum(axis=1)
    via = inv_ok & a.is_dist[inv_c] & (nshops > 0) & (rng.random(m) < 0.5)
    j = (rng.random(m) * np.maximum(nshops, 1)).astype(np.int64)
    link_shop = a.dist_shops[inv_c, j]
    use_fav = ~via & (rng.random(m) < 0.35)
    product = cat.sample_global(rng, m)
    product = np.where(use_fav, cat.sample_in_shop(rng, fav_of[buyer]), product)
    product = np.where(via, cat.sample_in_shop(rng, np.maximum(link_shop, 0)), product)
    ctx.add_orders(buyer, product, created, referrer=np.where(via, inv, -1), public=~via)


# ------------------------------------------------------------------------ lifecycle
def _work_hours(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    """Couriers and warehouses act between 08:00 and 21:00."""
    day = np.floor(t / D) * D
    hour = (t - day) / H
    morning = day + 8 * H + rng.random(len(t)) * 3 * H
    t = np.where(hour < 8, morning, t)
    return np.where(hour >= 21, morning + D, t)


def lifecycle(ctx: Ctx, o: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    rng, cat = ctx.rng, ctx.cat
    n = len(o["created"])
    mode, created, shop = o["mode"], o["created"], o["shop"]
    virt = cat.virtual[o["product"]]
    brush, mal = mode == M_BRUSH, mode == M_MALICIOUS
    r = lambda: rng.random(n)  # noqa: E731

    unpaid = np.where(mal, r() < 0.6, np.where(brush, False, r() < 0.035))
    pay = np.where(r() < 0.93, rng.lognormal(np.log(45), 0.9, n), rng.lognormal(np.log(1200), 1.0, n))
    pay = np.where(brush, rng.uniform(2, 15, n), pay)
    pay = np.where(mal, rng.uniform(5, 120, n), pay)
    paid = np.where(unpaid, NAN, created + np.maximum(pay, 3))

    ship = ctx.cat.ship_med[shop] * D * rng.lognormal(0, 0.5, n)
    shipped = _work_hours(rng, paid + np.clip(ship, 0.05 * D, 7 * D))
    shipped = np.where(brush, paid + rng.uniform(0.5, 4, n) * H, shipped)
    shipped = np.where(virt, paid + rng.uniform(1, 30, n), shipped)

    dd = CARRIER_DAYS[o["carrier"]] * D * rng.lognormal(0, 0.35, n)
    delivered = _work_hours(rng, shipped + np.clip(dd, 0.4 * D, 7 * D))
    delivered = np.where(brush, shipped + rng.uniform(0.6, 1.3, n) * D, delivered)
    delivered = np.where(virt, shipped + np.minimum(rng.lognormal(np.log(600), 2.0, n), 20 * D),
                         delivered)
    confirm = delivered + np.minimum(rng.lognormal(np.log(2 * D), 1.0, n), 10 * D)
    settle = delivered + rng.uniform(7, 15, n) * D

    refunded = np.full(n, NAN)
    rfrac = np.ones(n)
    u = r()
    honest_refund = (mode == M_HONEST) & ~unpaid
    pre = honest_refund & ~virt & (u < 0.012)  # cancelled after paying, before shipping
    post = honest_refund & ~virt & (u >= 0.012) & (u < 0.03)  # returned after delivery
    part = honest_refund & (u >= 0.03) & (u < 0.045)
    refunded = np.where(pre, paid + (shipped - paid) * rng.uniform(0.05, 0.9, n), refunded)
    refunded = np.where(post, delivered + rng.uniform(1, 7, n) * D, refunded)
    refunded = np.where(part, delivered + rng.uniform(0.5, 5, n) * D, refunded)
    rfrac = np.where(part, np.round(rng.uniform(0.1, 0.5, n), 2), rfrac)
    mal_ref = mal & ~unpaid & (u < 0.92)
    refunded = np.where(mal_ref, paid + np.minimum(rng.lognormal(np.log(2 * H), 0.8, n),
                                                   (shipped - paid) * 0.9), refunded)
    arb = (mode == M_ARBITRAGE) & ~unpaid
    arb_ok = arb & (u < 0.85)
    arb_fail = arb & (u >= 0.85) & (u < 0.95)
    refunded = np.where(arb_ok, settle + rng.uniform(2, 72, n) * H, refunded)
    refunded = np.where(arb_fail, delivered + rng.uniform(1, 6, n) * D, refunded)
    before_ship = pre | mal_ref
    shipped = np.where(before_ship, NAN, shipped)
    delivered = np.where(before_ship, NAN, delivered)
    full = (pre | post | mal_ref | arb_ok | arb_fail)
    confirm = np.where(before_ship | post | arb_fail, NAN, confirm)
    settle = np.where(before_ship, NAN, settle)

    review_p = np.where(brush, 0.95, np.where(mal, 0.0, 0.28))
    reviewed = np.where(r() < review_p, delivered + rng.lognormal(np.log(2.5 * D), 0.9, n), NAN)
    reviewed = np.where(brush & ~np.isnan(reviewed), delivered + rng.uniform(3, 40, n) * 60,
                        reviewed)
    rating = rng.choice(np.arange(1, 6), n, p=RATING_P).astype(np.float64)
    unhappy = full & (np.nan_to_num(refunded, nan=np.inf) < np.nan_to_num(reviewed, nan=-np.inf))
    rating = np.where(unhappy, rng.choice([1.0, 2.0, 3.0], n, p=[0.6, 0.25, 0.15]), rating)
    rating = np.where(brush, 5.0, rating)
    return {"paid": paid, "shipped": shipped, "delivered": delivered, "confirm": confirm,
            "settle": settle, "refunded": refunded, "rfrac": rfrac, "full": full,
            "unpaid": unpaid, "reviewed": reviewed, "rating": rating}


def fake_shipping(ctx: Ctx, o: dict, life: dict) -> np.ndarray:
    """Shops that mark honest orders shipped with reused or invalid waybills, never delivered."""
    rng = ctx.rng
    n = len(o["created"])
    fk = np.zeros(n, dtype=bool)
    rings = {r.shops[0]: i for i, r in enumerate(ctx.rings) if r.kind == FAKE_SHIPPING}
    for s, (t0, p, mode) in ctx.fake_shops.items():
        sel = ((o["shop"] == s) & (o["kind"] == 0) & (o["created"] >= t0)
               & ~np.isnan(life["paid"]) & (rng.random(n) < p))
        i = np.flatnonzero(sel)
        if len(i) == 0:
            continue
        fk[i] = True
        o["kind"][i] = FAKE_SHIPPING
        o["ring"][i] = rings[s]
        carrier = ctx.cat.carriers[s, 0]
        o["carrier"][i] = carrier
        defect = rng.integers(1, 4, len(i))
        reuse = np.full(len(i), mode == "reuse") | ((mode == "mixed") & (rng.random(len(i)) < .5))
        per = rng.uniform(2, 6)  # orders per reused waybill
        pool = random_waybill_numbers(rng, np.full(max(1, int(reuse.sum() / per)), carrier))
        o["waybill"][i] = np.where(reuse, rng.choice(pool, len(i)), o["waybill"][i])
        o["defect"][i] = np.where(reuse, 0, defect)
    i = np.flatnonzero(fk)
    life["shipped"][i] = life["paid"][i] + rng.uniform(0.2, 20, len(i)) * H
    for k in ("delivered", "confirm", "settle", "reviewed"):
        life[k][i] = NAN
    asks = rng.random(len(i)) < 0.35
    life["refunded"][i] = np.where(asks, life["shipped"][i] + rng.uniform(4, 15, len(i)) * D, NAN)
    life["full"][i] = asks
    life["rfrac"][i] = 1.0
    return fk


# ------------------------------------------------------------------------ assembly helpers
def _ts(x: np.ndarray) -> pl.Series:
    v = np.where(np.isnan(x), 0, np.floor(np.nan_to_num(x))).astype(np.int64)
    s = pl.from_epoch(pl.Series(v), time_unit="s")
    return s.set(pl.Series(np.isnan(x)), None) if np.isnan(x).any() else s


def _strings_of(codes: np.ndarray, fn) -> pl.Series:
    uniq, inv = np.unique(codes, return_inverse=True)
    return fn(uniq).gather(inv.ravel())


def _null_where(s: pl.Series, mask: np.ndarray) -> pl.Series:
    return s.set(pl.Series(np.asarray(mask, dtype=bool)), None) if mask.any() else s


def _public_links(ctx: Ctx, shop: np.ndarray, eligible: np.ndarray) -> np.ndarray:
    """Orders placed through a distributor's link shared in a group chat."""
    rng, a = ctx.rng, ctx.acc
    d = np.flatnonzero(a.is_dist & ~a.fraud)
    pairs_s = a.dist_shops[d].ravel()
    pairs_d = np.repeat(d, 3)
    keep = pairs_s >= 0
    pairs_s, pairs_d = pairs_s[keep], pairs_d[keep]
    order = np.argsort(pairs_s, kind="stable")
    pairs_s, pairs_d = pairs_s[order], pairs_d[order]
    cnt = np.bincount(pairs_s, minlength=ctx.cat.n_shops)
    start = np.r_[0, np.cumsum(cnt)[:-1]]
    ok = eligible & (cnt[shop] > 0) & (rng.random(len(shop)) < 0.05)
    j = start[shop] + (rng.random(len(shop)) * np.maximum(cnt[shop], 1)).astype(np.int64)
    return np.where(ok, pairs_d[np.minimum(j, len(pairs_d) - 1)] if len(pairs_d) else -1, -1)


def _amounts(ctx: Ctx, o: dict) -> np.ndarray:
    rng, cat = ctx.rng, ctx.cat
    n = len(o["created"])
    gross = cat.price[o["product"]] * o["qty"]
    promo = np.floor((o["created"] - ctx.start) / D) == ctx.promo_day
    coupon = ~o["list_price"] & (rng.random(n) < np.where(promo, 0.45, 0.12))
    fixed = np.minimum(rng.choice([3.0, 5.0, 10.0, 20.0], n), gross * 0.3)
    pct = gross * rng.uniform(0.05, 0.2, n)
    disc = np.where(rng.random(n) < 0.5, fixed, pct)
    return np.round(np.maximum(gross - np.where(coupon, disc, 0.0), 0.01), 2)


def commissions(ctx: Ctx, o: dict, life: dict, T: float) -> dict[str, np.ndarray]:
    a, cat = ctx.acc, ctx.cat
    paid_ok = ~np.isnan(life["paid"])
    oi = np.flatnonzero(paid_ok & (o["referrer"] >= 0))
    limit = cat.level_limit[o["shop"][oi]]
    ben = o["referrer"][oi]
    rows_o, rows_b, rows_l = [], [], []
    for level in range(1, len(LEVEL_RATES) + 1):
        ok = (ben >= 0) & (level <= limit)
        rows_o.append(oi[ok])
        rows_b.append(ben[ok])
        rows_l.append(np.full(ok.sum(), level))
        up = a.inviter[np.maximum(ben, 0)]
        ben = np.where((ben >= 0) & (up >= 0) & a.is_dist[np.maximum(up, 0)], up, -1)
        if not (ben >= 0).any():
            break
    order = np.concatenate(rows_o)
    level = np.concatenate(rows_l)
    bene = np.concatenate(rows_b)
    amount = np.round(o["amount"][order] * LEVEL_RATES[level - 1], 2)
    settle = life["settle"][order]
    refunded = life["refunded"][order]
    full = life["full"][order] & (np.nan_to_num(refunded, nan=np.inf) <= T)
    reversed_ = full & (np.nan_to_num(settle, nan=np.inf) > refunded)
    settled = ~reversed_ & (np.nan_to_num(settle, nan=np.inf) <= T)
    status = np.where(reversed_, 2, np.where(settled, 1, 0))
    return {"order": order, "beneficiary": bene, "level": level, "amount": amount,
            "status": status, "settled_at": np.where(settled, settle, NAN)}


# ------------------------------------------------------------------------ assembly
def assemble(ctx: Ctx) -> dict[str, pl.DataFrame]:
    rng, a, cat = ctx.rng, ctx.acc, ctx.cat
    T = ctx.end
    o = {k: np.concatenate([b[k] for b in ctx.blocks]) for k in ctx.blocks[0]}
    n = len(o["created"])
    o["created"] = np.floor(o["created"])
    if not ((o["created"] >= ctx.start) & (o["created"] < T)).all():
        raise AssertionError("an order was created outside the window")
    o["shop"] = cat.prod_shop[o["product"]]
    o["referrer"] = np.where(o["referrer"] >= 0, o["referrer"],
                             _public_links(ctx, o["shop"], o["public"] & cat.programme[o["shop"]]))
    o["amount"] = _amounts(ctx, o)
    o["carrier"] = np.where(rng.random(n) < cat.carrier_p2[o["shop"]], cat.carriers[o["shop"], 1],
                            cat.carriers[o["shop"], 0])
    o["waybill"] = random_waybill_numbers(rng, o["carrier"])
    o["defect"] = np.zeros(n, dtype=np.int64)
    life = lifecycle(ctx, o)
    fake_shipping(ctx, o, life)
    _sequential_waybills(ctx, o)

    # the export is a snapshot at the end of the window
    def cut(x):
        return np.where(np.nan_to_num(x, nan=np.inf) <= T, x, NAN)

    paid, shipped, delivered = cut(life["paid"]), cut(life["shipped"]), cut(life["delivered"])
    confirm, refunded, reviewed = cut(life["confirm"]), cut(life["refunded"]), cut(life["reviewed"])
    full_ref = life["full"] & ~np.isnan(refunded)
    le = lambda x: np.nan_to_num(x, nan=np.inf) <= T  # noqa: E731
    status = np.select(
        [full_ref, life["unpaid"] & (o["created"] + 1800 <= T), np.isnan(paid), le(confirm),
         le(delivered), le(shipped)],
        [5, 6, 0, 4, 3, 2], default=1,
    )
    com = commissions(ctx, o, life, T)

    # identity of each order's session, from the buyer's habits
    b = o["buyer"]
    u = lambda: rng.random(n)  # noqa: E731
    dev = np.where((a.dev2[b] != 0) & (u() < a.p_dev2[b]), a.dev2[b], a.dev1[b])
    at_home = (u() < a.p_home[b]) | (a.pool[b] < 0)
    ip = np.where(at_home, a.ip_home[b], pool_pick(ctx, np.maximum(a.pool[b], 0)))
    addr = np.where((a.addr_b[b] >= 0) & (u() < a.p_b[b]), a.addr_b[b], a.addr_a[b])
    alt = (a.name_alt[b] >= 0) & (u() < a.p_name_alt[b])
    name_idx = np.where(alt, a.name_src[np.maximum(a.name_alt[b], 0)], a.name_src[b])
    pstyle = np.where(cat.masked[o["shop"]], 6, a.rphone_style[b])
    pstyle = np.where(u() < 0.03, rng.integers(0, 7, n), pstyle)
    payer = np.where((a.payer2[b] != 0) & (u() < a.p_payer2[b]), a.payer2[b], a.payer1[b])
    virt = cat.virtual[o["product"]]

    names = person_names(rng, a.n)
    addresses = ctx.book.render_all()
    acc_ids = pl.Series([f"U{x}" for x in rng.choice(900_000_000, a.n, replace=False)
                         + 100_000_000])
    suffix = rng.choice(100_000_000, n, replace=False)
    created_s = _ts(o["created"])
    order_ids = pl.DataFrame({"t": created_s, "s": suffix}).select(
        pl.concat_str([pl.lit("E"), pl.col("t").dt.strftime("%Y%m%d%H%M%S"),
                       pl.col("s").cast(pl.String).str.zfill(8)]))[:, 0]
    has_ship = ~np.isnan(shipped) & ~virt
    ref = o["referrer"]
    orders = pl.DataFrame({
        "order_id": order_ids,
        "shop_id": cat.shop_ids.gather(o["shop"]),
        "buyer_id": acc_ids.gather(b),
        "product_id": cat.product_ids.gather(o["product"]),
        "quantity": o["qty"],
        "amount": o["amount"],
        "created_at": created_s,
        "paid_at": _ts(paid),
        "status": pl.Series(np.array(ORDERS.columns[8].enum)[status]),
        "refunded_at": _ts(refunded),
        "refund_amount": np.where(np.isnan(refunded), NAN,
                                  np.round(o["amount"] * life["rfrac"], 2)),
        "referrer_id": _null_where(acc_ids.gather(np.maximum(ref, 0)), ref < 0),
        "device_id": _strings_of(dev, device_strings),
        "ip": _strings_of(ip, ip_strings),
        "receiver_name": _null_where(names.gather(name_idx), virt & (u() < 0.8)),
        "receiver_phone": phone_strings(a.phone[a.rphone_src[b]], pstyle),
        "address": _null_where(addresses.gather(addr), virt),
        "payment_account": _null_where(_strings_of(payer, payer_strings), np.isnan(paid)),
        "carrier": _null_where(carrier_names(o["carrier"], cat.carrier_short[o["shop"]]),
                               ~has_ship),
        "tracking_no": _null_where(waybill_strings(o["carrier"], o["waybill"], o["defect"]),
                                   ~has_ship),
        "shipped_at": _ts(shipped),
        "delivered_at": _ts(delivered),
        "review_rating": pl.Series(np.where(np.isnan(reviewed), NAN, life["rating"]),
                                   nan_to_null=True).cast(pl.Int64),
        "reviewed_at": _ts(reviewed),
    }).with_columns(pl.col("refund_amount").fill_nan(None))
    labels = pl.DataFrame({
        "order_id": order_ids,
        "is_fraud": (o["kind"] != 0).astype(np.int64),
        "kind": pl.Series(np.array(KINDS)[o["kind"]]),
        "ring_id": _ring_ids(ctx, o["ring"]),
        "is_cover": o["cover"].astype(np.int64),
        "_t": o["created"],
    })
    orders = orders.with_columns(pl.Series("_t", o["created"])).sort(["_t", "order_id"])
    labels = labels.sort(["_t", "order_id"]).drop("_t")
    orders = orders.drop("_t").select(ORDERS.column_names)

    cm = pl.DataFrame({
        "order_id": order_ids.gather(com["order"]),
        "beneficiary_id": acc_ids.gather(com["beneficiary"]),
        "level": com["level"],
        "amount": com["amount"],
        "status": pl.Series(np.array(COMMISSIONS.columns[4].enum)[com["status"]]),
        "settled_at": _ts(com["settled_at"]),
        "_t": o["created"][com["order"]],
    }).sort(["_t", "order_id", "level"]).drop("_t").select(COMMISSIONS.column_names)
    return {"orders": orders, "order_labels": labels, "commissions": cm,
            **_accounts(ctx, acc_ids, names, o)}


def _ring_ids(ctx: Ctx, ring: np.ndarray) -> pl.Series:
    ids = pl.Series([r.ring_id for r in ctx.rings] or [""], dtype=pl.String)
    return _null_where(ids.gather(np.maximum(ring, 0)), ring < 0)


def _sequential_waybills(ctx: Ctx, o: dict) -> None:
    """Obvious farms ship empty parcels with consecutive waybill numbers."""
    rng = ctx.rng
    sel = np.flatnonzero(o["mode"] == M_BRUSH)
    if len(sel) == 0:
        return
    order = sel[np.lexsort((o["created"][sel], o["shop"][sel], o["ring"][sel]))]
    key = o["ring"][order] * 100_000 + o["shop"][order]
    first = np.r_[0, np.flatnonzero(np.diff(key)) + 1]
    grp = np.repeat(np.arange(len(first)), np.diff(np.r_[first, len(order)]))
    rank = np.arange(len(order)) - first[grp]
    carrier = ctx.cat.carriers[o["shop"][order], 0]
    base = random_waybill_numbers(rng, carrier[first]) // 2
    o["carrier"][order] = carrier
    o["waybill"][order] = base[grp] + rank * rng.integers(1, 3, len(order))


def _accounts(ctx: Ctx, acc_ids: pl.Series, names: pl.Series, o: dict) -> dict:
    rng, a = ctx.rng, ctx.acc
    phone = pl.Series(a.phone).cast(pl.String)
    phone = pl.DataFrame({"p": phone, "f": a.phone_plus86}).select(
        pl.when(pl.col("f")).then(pl.concat_str([pl.lit("+86"), pl.col("p")]))
        .otherwise(pl.col("p")))[:, 0]
    inv = a.inviter
    accounts = pl.DataFrame({
        "account_id": acc_ids,
        "registered_at": _ts(a.reg),
        "inviter_id": _null_where(acc_ids.gather(np.maximum(inv, 0)), inv < 0),
        "is_distributor": a.is_dist,
        "phone": phone,
        "device_id": _strings_of(a.reg_dev, device_strings),
        "ip": _strings_of(a.reg_ip, ip_strings),
        "nickname": nicknames(rng, names, a.nick_default),
        "_t": a.reg,
    }).sort(["_t", "account_id"])
    ring_ids = _ring_ids(ctx, a.ring)
    labels = pl.DataFrame({
        "account_id": acc_ids,
        "is_fraud": a.fraud.astype(np.int64),
        "kind": pl.Series(np.array(KINDS)[a.kind]),
        "ring_id": ring_ids,
        "ring_kind": _null_where(pl.Series(np.array(KINDS)[a.kind]), a.ring < 0),
        "role": pl.Series(np.array(ROLES)[a.role]),
        "looks_honest": a.looks_honest.astype(np.int64),
        "crowd": _null_where(pl.Series(np.array(CROWDS)[a.crowd]), a.crowd == 0),
        "_t": a.reg,
    }).sort(["_t", "account_id"]).drop("_t")
    counts = np.bincount(o["ring"][o["ring"] >= 0], minlength=len(ctx.rings))
    shop_ids = ctx.cat.shop_ids
    rings = pl.DataFrame({
        "ring_id": [r.ring_id for r in ctx.rings],
        "kind": [KINDS[r.kind] for r in ctx.rings],
        "size": [len(r.members) if len(r.members) else 1 for r in ctx.rings],
        "looks_honest": [int(r.looks_honest) for r in ctx.rings],
        "members": [";".join(acc_ids.gather(np.sort(r.members)).to_list()) if len(r.members)
                    else shop_ids[r.shops[0]] for r in ctx.rings],
        "shop_ids": [";".join(shop_ids[s] for s in sorted(r.shops)) for r in ctx.rings],
        "order_count": counts.astype(np.int64),
    }, schema_overrides={"order_count": pl.Int64})
    return {"accounts": accounts.drop("_t").select(ACCOUNTS.column_names),
            "account_labels": labels, "ring_labels": rings}
