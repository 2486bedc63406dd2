"""Who is behind the accounts: identity groups, activity scans and rings with evidence.

Heavy joins and counting happen in DuckDB (sql/intermediate); this module turns their
small outputs into ring candidates. Global connected components use scipy (fast at
millions of edges); NetworkX is only used on the linked candidates (ring analysis and
drawings), never on every order.
"""

from __future__ import annotations

import bisect
import hashlib
import heapq
import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta

import duckdb
import networkx as nx
import numpy as np
import polars as pl
from scipy import sparse
from scipy.sparse.csgraph import connected_components
from scipy.stats import binom

from orderguard import warehouse

log = logging.getLogger(__name__)

RING_KINDS = ("brushing", "self_referral", "malicious", "fake_shipping", "deep_chain")


@dataclass
class GraphSettings:
    hub_accounts: int = 200  # identifiers shared by more accounts link nothing
    max_link_group: int = 60  # identifiers shared by more accounts produce no account pairs
    strong_link_min: float = 0.35  # rarity weight of one device/payer/phone link that groups alone
    min_co_buyers: int = 5  # households are 2-4 accounts; co-buying needs more
    max_scan_group: int = 400
    min_surprise: float = 8.0  # -log10 binomial tail of co-buying given product popularity
    min_co_buyer_share: float = 0.4  # a farm's accounts nearly all buy the target; a crowd's do not
    min_lift: float = 5.0  # co-buying share against the product's share of all buyers
    min_cohort_buyers: int = 8  # a behaviour cohort: this many accounts on one product...
    min_cohort_share: float = 0.5  # ... placing at least this share of its orders meanwhile
    dense_blocks: int = 3  # FRAUDAR blocks peeled per scan
    dense_block_gate: float = 1.25  # a block must be denser than the graph as a whole
    dense_block_max_share: float = 0.02  # ... and hold at most this share of all buyers
    self_referral_min_weight: float = 0.3
    malicious_min_orders: int = 8  # a shop's flood: orders of its heavy cancellers together
    malicious_min_account_orders: int = 3  # a heavy canceller: this many orders at the shop
    malicious_min_cancel_share: float = 0.7
    # a flood is a burst: its undone orders fall within a few days, not across the window
    # (accounts that each cancel a lot at one popular shop over a month are not one flood)
    malicious_burst_hours: float = 72.0
    # ... and each of its accounts undoes this many orders inside the burst: the burst alone
    # makes it a heavy canceller there. A customer who cancels now and then at a shop she
    # uses all month has two of them land in some three days; a flooder places a run
    # (flooders also return to a shop, so its undone orders elsewhere do not clear it)
    malicious_min_burst_account_orders: int = 3
    # a flood's longest gap is a few times its median one (at one steady pace the widest of
    # 60 gaps passes ten medians about one time in twelve): a wider one is a pause between
    # two floods
    malicious_pause_ratio: float = 10.0
    fake_shipping_min_orders: int = 3
    # ... and this share of the shop's shipped orders: couriers lose a few parcels in a
    # thousand, so a large honest shop has several undelivered every month
    fake_shipping_min_share: float = 0.02
    deep_chain_depth: int = 3  # the programme allows this many levels (programme.toml's)
    arbitrage_hours: float = 72.0  # a refund this soon after settling is arbitrage (programme.toml's)


@dataclass
class Ring:
    kind: str
    members: tuple[str, ...]
    strength: float
    evidence: str
    evidence_zh: str = ""  # the same facts in Chinese, for support's flagged_orders.csv
    shops: tuple[str, ...] = ()
    products: tuple[str, ...] = ()
    ring_id: str = ""
    meta: dict = field(default_factory=dict)


def ring_id_for(kind: str, members: tuple[str, ...]) -> str:
    digest = hashlib.sha1(("|".join(sorted(members))).encode()).hexdigest()[:8]
    return f"{kind[:2].upper()}-{digest}"


# --------------------------------------------------------------------------- identity


def linking_pairs(con: duckdb.DuckDBPyConnection, settings: GraphSettings) -> pl.DataFrame:
    """The account pairs `identity_components` can use, filtered in DuckDB: at platform scale
    account_pairs has tens of millions of rows and most link too weakly to group anyone."""
    return warehouse.query(
        con, "select account_a, account_b, strong_weight, n_families from intermediate.account_pairs "
        "where strong_weight >= $strong_link_min or n_families >= 2",
        {"strong_link_min": settings.strong_link_min})


def pairs_within(con: duckdb.DuckDBPyConnection, accounts: list[str]) -> pl.DataFrame:
    """The account pairs with both accounts among `accounts` (ring members, a few thousand)."""
    con.register("_pairs_within_accounts", pl.DataFrame({"account_id": accounts},
                                                        schema={"account_id": pl.String}).to_arrow())
    try:
        return warehouse.query(
            con, "select p.account_a, p.account_b from intermediate.account_pairs p "
            "semi join _pairs_within_accounts a on a.account_id = p.account_a "
            "semi join _pairs_within_accounts b on b.account_id = p.account_b")
    finally:
        con.unregister("_pairs_within_accounts")


def identity_components(pairs: pl.DataFrame, settings: GraphSettings) -> pl.DataFrame:
    """grain: one row per account in a component of >= 2 accounts.

    A link counts when one strong identifier (device, payer, phone) is rare enough to mean
    one person, or when two or more independent identifier families agree."""
    linked = pairs.filter(
        (pl.col("strong_weight") >= settings.strong_link_min) | (pl.col("n_families") >= 2)
    )
    if linked.is_empty():
        return pl.DataFrame(schema={"account_id": pl.String, "component": pl.Int64})
    ids = pl.concat([linked["account_a"], linked["account_b"]]).unique().sort()
    rows = ids.search_sorted(linked["account_a"]).to_numpy()  # ids is sorted and holds them all
    cols = ids.search_sorted(linked["account_b"]).to_numpy()
    graph = sparse.coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(ids), len(ids)))
    _, labels = connected_components(graph, directed=False)
    return pl.DataFrame({"account_id": ids, "component": labels.astype(np.int64)})


DRAWN_ID_TYPES = ("device", "payer", "phone", "ip", "addr_strict")  # what a ring drawing shows


def member_identifiers(con: duckdb.DuckDBPyConnection, members: list[str]) -> pl.DataFrame:
    """grain: one row per (account_id, id_type, id_value) of the members, drawn types only.
    A semi join on the members: list_contains per row was ~0.45 s a ring over the 25M
    identifier rows of a 10M-order window, this ~0.14 s."""
    return warehouse.query(
        con,
        "select account_id, id_type, id_value from intermediate.account_identifiers "
        "semi join (select unnest($members::varchar[]) as account_id) using (account_id) "
        "where list_contains($types, id_type) order by account_id, id_type, id_value",
        {"members": members, "types": list(DRAWN_ID_TYPES)},
    )


def member_invites(con: duckdb.DuckDBPyConnection, members: list[str], uplines: bool) -> pl.DataFrame:
    """grain: one row per member with an inviter: (account_id, inviter_id), the inviter a
    member too unless `uplines` (a chain past the allowed depth hangs from accounts outside
    the ring, and the drawing shows them)."""
    return warehouse.query(
        con,
        "select account_id, inviter_id from staging.accounts "
        "semi join (select unnest($members::varchar[]) as account_id) using (account_id) "
        "where inviter_id is not null and ($uplines or list_contains($members, inviter_id)) order by 1, 2",
        {"members": members, "uplines": uplines},
    )


def ring_graph(members: list[str], identifiers: pl.DataFrame,
               invites: pl.DataFrame | None = None) -> nx.Graph:
    """Bipartite graph of ring accounts and the identifiers they share (for drawings), plus
    invitation edges (kind 'invite', inviter to invitee) when `invites` is given; an inviter
    outside the ring is a node of kind 'upline'."""
    graph = nx.Graph()
    rows = identifiers.filter(pl.col("account_id").is_in(members))
    shared = rows.group_by(["id_type", "id_value"]).agg(pl.col("account_id").n_unique().alias("n"))
    shared = shared.filter(pl.col("n") >= 2)
    keep = rows.join(shared.select("id_type", "id_value"), on=["id_type", "id_value"])
    for account in members:
        graph.add_node(account, kind="account")
    for row in keep.iter_rows(named=True):
        node = f"{row['id_type']}:{row['id_value']}"
        graph.add_node(node, kind=row["id_type"])
        graph.add_edge(row["account_id"], node)
    for child, parent in (invites.iter_rows() if invites is not None else ()):
        if parent not in graph:
            graph.add_node(parent, kind="upline")
        graph.add_edge(parent, child, kind="invite")
    return graph


# --------------------------------------------------------------------------- detectors


def co_buying_rings(scan: pl.DataFrame, settings: GraphSettings) -> list[Ring]:
    """Many accounts behind one identifier buying one product far beyond its popularity."""
    if scan.is_empty():
        return []
    k = scan["co_buyers"].to_numpy()
    n = scan["n_accounts"].to_numpy()
    q = np.clip(scan["product_buyer_rate"].to_numpy(), 1e-4, 1.0)
    surprise = -binom.logsf(k - 1, n, q) / np.log(10)
    share = k / n
    scan = scan.with_columns(
        pl.Series("surprise", surprise), pl.Series("share", share), pl.Series("lift", share / q)
    ).filter(
        (pl.col("surprise") >= settings.min_surprise)
        & (pl.col("share") >= settings.min_co_buyer_share)
        & (pl.col("lift") >= settings.min_lift)
    )
    rings = []
    # ties in full: one group's products often share a surprise (niche products' rates are
    # clipped alike), and the scan's rows come in no fixed order
    ranked = scan.sort(["surprise", "id_type", "id_value", "product_id", "shop_id"],
                       descending=[True, False, False, False, False])
    for row in ranked.iter_rows(named=True):
        members = tuple(sorted(row["buyer_ids"]))
        what = _ID_WORDS.get(row["id_type"], row["id_type"])
        what_zh = _ID_ZH.get(row["id_type"], row["id_type"])
        rings.append(
            Ring(
                kind="brushing",
                members=members,
                strength=float(row["surprise"]),
                evidence=(
                    f"{len(members)} of {row['n_accounts']} accounts sharing one {what} bought "
                    f"product {row['product_id']} of shop {row['shop_id']} (bought by "
                    f"{row['product_buyers']} accounts overall; chance 1e-{row['surprise']:.0f})"
                ),
                evidence_zh=(
                    f"共用同一{what_zh}的 {row['n_accounts']} 个账号中有 {len(members)} 个购买了店铺 "
                    f"{row['shop_id']} 的商品 {row['product_id']}（该商品共 {row['product_buyers']} "
                    f"个买家；偶然出现的概率 1e-{row['surprise']:.0f}）"
                ),
                shops=(row["shop_id"],),
                products=(row["product_id"],),
                meta={"id_type": row["id_type"]},
            )
        )
    return rings


_ID_WORDS = {
    "addr_strict": "address (to the room)",
    "addr_building": "building",
    "device": "device",
    "payer": "payment account",
    "ip": "IP",
    "phone": "phone",
    "receiver": "receiver (name and phone)",
}
_ID_WORDS_MANY = {  # "38 accounts on 2 devices, 11 receivers (name and phone)"
    "addr_strict": "addresses (to the room)",
    "addr_building": "buildings",
    "device": "devices",
    "payer": "payment accounts",
    "ip": "IPs",
    "phone": "phones",
    "receiver": "receivers (name and phone)",
}
_ID_ZH = {  # identifier types as support reads them
    "addr_strict": "地址（精确到门牌）",
    "addr_building": "楼栋",
    "device": "设备",
    "payer": "支付账号",
    "ip": "IP",
    "ip_net": "IP 网段",
    "phone": "手机号",
    "phone_range": "手机号段",
    "receiver": "收货人姓名和手机号",
}


def identity_rings(
    components: pl.DataFrame, accounts: pl.DataFrame, identifiers: pl.DataFrame,
    settings: GraphSettings | None = None,
) -> list[Ring]:
    """Identity groups too large to be a household that also buy in lockstep.

    Concentration on one product only counts when that product is far less common among
    all buyers (lift >= min_lift): in a shop that sells one thing, everyone concentrates."""
    if components.is_empty():
        return []
    settings = settings or GraphSettings()
    joined = components.join(accounts, on="account_id", how="left")
    if "top_product_buyer_rate" not in joined.columns:
        joined = joined.with_columns(pl.lit(None, pl.Float64).alias("top_product_buyer_rate"))
    joined = joined.with_columns(
        (pl.col("top_product_share") / pl.col("top_product_buyer_rate")).alias("top_product_lift")
    )
    groups = (
        joined.group_by("component", maintain_order=True)
        .agg(
            pl.len().alias("size"),
            pl.col("device_accounts").max().fill_null(0).alias("devices"),
            pl.col("payer_accounts").max().fill_null(0).alias("payers"),
            pl.col("top_product_share").fill_null(0).mean().alias("top_share"),
            pl.col("top_product_lift").fill_null(0).median().fill_null(0).alias("lift"),
            pl.col("fast_pay_share").fill_null(0).mean().alias("fast"),
            pl.col("account_id").sort().alias("members"),
        )
        .filter(
            (pl.col("size") >= 5)
            # a big identity group alone can be an office; it needs behaviour in common too
            & ((pl.col("devices") >= 5) | (pl.col("payers") >= 4))
            & (((pl.col("top_share") >= 0.5) & (pl.col("lift") >= settings.min_lift))
               | (pl.col("fast") >= 0.5))
        )
    )
    # the identifiers each kept group spans, in one pass: filtering all identifiers once per
    # group cost ~4 s at 10M orders (14M identifier rows, ~60 groups)
    in_words = (pl.when(pl.col("n") == 1).then(pl.col("id_type").replace(_ID_WORDS))
                .otherwise(pl.col("id_type").replace(_ID_WORDS_MANY)))
    spans = (
        identifiers.join(groups.select("component", pl.col("members").alias("account_id"))
                         .explode("account_id"), on="account_id")
        .group_by("component", "id_type")
        .agg(pl.col("id_value").n_unique().alias("n"))
        .sort("component", "id_type")
        .group_by("component", maintain_order=True)
        .agg(pl.format("{} {}", "n", in_words).str.join(", ").alias("parts"),
             pl.format("{} 个{}", "n", pl.col("id_type").replace(_ID_ZH)).str.join("、").alias("parts_zh"))
    )
    parts_of = dict(zip(spans["component"], spans["parts"], strict=True))
    parts_zh_of = dict(zip(spans["component"], spans["parts_zh"], strict=True))
    rings = []
    for group in groups.iter_rows(named=True):
        members = tuple(group["members"])
        parts = parts_of.get(group["component"], "")
        rings.append(
            Ring(
                kind="brushing",
                members=members,
                strength=float(group["size"]),
                evidence=(f"{group['size']} accounts on {parts}; {group['top_share']:.0%} of their "
                          "orders on one product"),
                evidence_zh=(f"{group['size']} 个账号共用 {parts_zh_of.get(group['component'], '')}；"
                             f"其订单 {group['top_share']:.0%} 集中在同一商品"),
            )
        )
    return rings


def self_referral_rings(
    relations: pl.DataFrame, links: pl.DataFrame, alt_facts: pl.DataFrame, settings: GraphSettings
) -> list[Ring]:
    """Distributors who invite or earn on their own alt accounts.

    relations: (distributor_id, account_id) from invites and referred orders.
    links: identity links (account_a < account_b, link_weight, strong_weight, shared_types).
    alt_facts: per account registered_at, arbitrage_orders (refunds soon after settlement)
    and, when known, inviter_id (who invited it: a chain of alts earns level 2-3 commission)
    and phone_range (the 7-digit range of the number it registered with).
    The commission at stake is not quoted here: marts.rings sums it over the ring's orders,
    without reversed commission, and support's evidence quotes that figure.
    An alt is an invitee/buyer linked to the distributor, directly or through other alts.
    Invitees linked only among themselves point at the distributor only when they are at
    least half of its circle (households and colleagues among a viral distributor's
    thousands of fans are a sliver of it). A link needs one identifier rare enough to point
    at a person or a household (an office floor's address and IP are shared too widely).
    A ring needs that identity evidence plus one more independent family: registrations
    minutes apart, commission arbitrage, alts making up most of the distributor's circle, or
    alts invited by alts so that the distributor earns level 2-3 commission through its own
    accounts, when two of the chain registered with numbers of one range (a family's members
    invite one another too, on one flat, line and sometimes device or payer).
    A household member buying through a relative's link, even on one device or payer, has
    only the first."""
    if relations.is_empty() or links.is_empty():
        return []
    # each distributor's circle (itself and everyone it invited or earned on), joined to the
    # links that stay inside one circle: set-based, not one filter per distributor
    circle = pl.concat([
        relations.select("distributor_id", "account_id"),
        relations.select("distributor_id", pl.col("distributor_id").alias("account_id")).unique(),
    ])
    inner = (
        links.select("account_a", "account_b", "shared_types")
        .join(circle.rename({"account_id": "account_a"}), on="account_a")
        .join(circle.rename({"account_id": "account_b"}), on=["account_b", "distributor_id"])
    )
    if inner.is_empty():
        return []
    invitee_counts = dict(
        relations.filter(pl.col("account_id") != pl.col("distributor_id"))
        .group_by("distributor_id").len().iter_rows()
    )
    for col in ("inviter_id", "phone_range"):
        if col not in alt_facts.columns:
            alt_facts = alt_facts.with_columns(pl.lit(None, pl.String).alias(col))
    facts = {
        r["account_id"]: r
        for r in alt_facts.select(
            "account_id", "registered_at", "arbitrage_orders", "inviter_id", "phone_range"
        ).filter(pl.col("account_id").is_in(pl.concat([inner["account_a"], inner["account_b"]]).implode()))
        .iter_rows(named=True)
    }
    # registration times of each such distributor's whole circle, to tell a batch of alts
    # from a crowd signing up at once (a livestream's fans)
    circle_times = dict(
        relations.filter(pl.col("distributor_id").is_in(inner["distributor_id"].unique().implode()))
        .join(alt_facts.select("account_id", "registered_at"), on="account_id")
        .group_by("distributor_id")
        .agg(pl.col("registered_at").drop_nulls().sort())
        .iter_rows()
    )
    rings = []
    for (owner,), group in inner.sort("distributor_id").group_by(["distributor_id"], maintain_order=True):
        linked = nx.Graph(group.select("account_a", "account_b").iter_rows())
        reaches_owner = owner in linked
        alts = sorted((nx.node_connected_component(linked, owner) if reaches_owner
                       else set(linked)) - {owner})
        invitees = invitee_counts.get(owner, 0)
        if not alts or not (reaches_owner or len(alts) >= 0.5 * invitees):
            continue
        most_of_circle = len(alts) >= 4 and len(alts) >= 0.5 * invitees
        alt_rows = [facts.get(a, {}) for a in alts]
        families, families_zh = ["identity"], ["身份关联"]
        times = sorted(r["registered_at"] for r in alt_rows if r.get("registered_at"))
        if _registered_as_a_batch(times, circle_times.get(owner, [])):
            families.append("registered minutes apart")
            families_zh.append("注册时间只隔几分钟")
        if sum(r.get("arbitrage_orders") or 0 for r in alt_rows):
            families.append("refunds after commission settled")
            families_zh.append("佣金结算后退款")
        if most_of_circle:
            families.append(f"{len(alts)} of {invitees} invitees/buyers are linked")
            families_zh.append(f"{invitees} 个被邀请人/买家中 {len(alts)} 个相互关联")
        # only alts linked to the distributor itself: a fan who invited her own husband
        # earns a stranger level 2 commission, and that stranger built nothing
        chain = _chain_through_alts(
            owner, alts, {a: r.get("inviter_id") for a, r in zip(alts, alt_rows, strict=True)},
            settings.deep_chain_depth) if reaches_owner else set()
        if chain and _bound_numbers_of_one_range([owner, *sorted(chain)], facts):
            families.append("alts invited by alts to earn level 2-3 commission")
            families_zh.append("小号层层邀请以赚取二、三级佣金")
        if len(families) < 2:
            continue
        ring_links = group.filter(pl.col("account_a").is_in([owner, *alts]))
        types = sorted({t for s in ring_links["shared_types"].drop_nulls() for t in s.split(",")})
        rings.append(
            Ring(
                kind="self_referral",
                members=tuple([owner, *alts]),
                strength=float(len(families) * len(alts)),
                evidence=(
                    f"distributor {owner} invited or earns on {len(alts)} accounts sharing "
                    f"{', '.join(types)} with them or each other; "
                    f"{'; '.join(families[1:])}"
                ),
                evidence_zh=(
                    f"分销员 {owner} 邀请或获佣的 {len(alts)} 个账号与其本人或彼此共用"
                    f"{'、'.join(_ID_ZH.get(t, t) for t in types)}；{'；'.join(families_zh[1:])}"
                ),
                meta={"owner": owner},
            )
        )
    return rings


def _chain_through_alts(owner: str, alts: list[str], inviter_of: dict, levels: int) -> set[str]:
    """The alts on invite paths that climb from an alt invited by another alt to the
    distributor through alts only, within the levels the programme pays: the distributor
    earns level 2 or 3 commission on its own accounts (自己邀请自己 built into a chain).
    Empty when there is no such path."""
    alt_set, chain = set(alts), set()
    for alt in alts:
        cur, steps, path = alt, 0, []
        while cur in alt_set and steps < levels:
            path.append(cur)
            cur, steps = inviter_of.get(cur), steps + 1
        if cur == owner and steps >= 2:
            chain.update(path)
    return chain


def _bound_numbers_of_one_range(accounts: list[str], facts: dict) -> bool:
    """Two of `accounts` (a chain and its distributor) registered with one mobile number or
    numbers of one 7-digit range: SIM cards bought together for alts. A household's members
    invite one another too (mother -> daughter -> son-in-law) on one flat, broadband line
    and sometimes device or payer, each with their own number; parcels sent to one relative
    put her number on the others' orders, so only the numbers the accounts are bound to count."""
    ranges = [facts.get(a, {}).get("phone_range") for a in accounts]
    ranges = [r for r in ranges if r]
    return len(ranges) > len(set(ranges))


def _registered_as_a_batch(alt_times: list, circle_times: list, minutes: int = 30) -> bool:
    """At least three linked accounts registered within `minutes` of one another, and they
    are at least half of the distributor's circle that registered in those minutes: alts
    made in a batch, not linked fans among a crowd that signed up at once (a livestream)."""
    span = timedelta(minutes=minutes)
    for start in alt_times:
        end = start + span
        alts_in = bisect.bisect_right(alt_times, end) - bisect.bisect_left(alt_times, start)
        if alts_in < 3:
            continue
        circle_in = bisect.bisect_right(circle_times, end) - bisect.bisect_left(circle_times, start)
        if alts_in >= 0.5 * circle_in:
            return True
    return False


_COHORT_FAMILIES = (  # behaviour_cohorts' give-aways beside the quick 5-star review
    ("fast_pay", "paid seconds after ordering", "下单后数秒内付款"),
    ("sequential_waybill", "waybill numbered next to another buyer's", "运单号与其他买家连号"),
    ("fast_delivery", "delivered within hours of shipping", "发货后数小时内即签收"),
    ("batch_registered", "account registered in a batch with another's", "与其他买家批量注册"),
)


def _span_words(hours: float) -> tuple[str, str]:
    """A cohort's span as support reads it: minutes under two hours, else hours."""
    if hours < 2:
        minutes = max(1, round(hours * 60))
        return f"{minutes} minutes", f"{minutes} 分钟"
    return f"{hours:.0f} h", f"{hours:.0f} 小时"


def behaviour_cohort_rings(cohorts: pl.DataFrame) -> list[Ring]:
    """Accounts sharing no identifier whose orders of one product show the same brushing
    behaviour together (intermediate.behaviour_cohorts: one row per cohort order)."""
    rings = []
    for (_,), group in cohorts.sort(["cohort_key", "order_id"]).group_by(
            ["cohort_key"], maintain_order=True):
        first = group.row(0, named=True)
        span_en, span_zh = _span_words(first["cohort_span_hours"])
        members = tuple(sorted(set(group["buyer_id"].to_list())))
        shown = [(group[col].mean(), en, zh) for col, en, zh in _COHORT_FAMILIES
                 if group[col].any()]
        rings.append(
            Ring(
                kind="brushing",
                members=members,
                strength=float(len(members)),
                evidence=(
                    f"{len(members)} accounts bought product {first['product_id']} of shop "
                    f"{first['shop_id']} within {span_en} "
                    f"({first['cohort_share']:.0%} of its orders there meanwhile), each reviewed "
                    "5 stars minutes after delivery; "
                    + ", ".join(f"{share:.0%} {en}" for share, en, _ in shown)
                ),
                evidence_zh=(
                    f"{len(members)} 个账号在 {span_zh}内购买店铺 "
                    f"{first['shop_id']} 的商品 {first['product_id']}（占其同期订单 "
                    f"{first['cohort_share']:.0%}），均在签收后几分钟内给五星好评；"
                    + "，".join(f"{share:.0%} {zh}" for share, _, zh in shown)
                ),
                shops=(first["shop_id"],),
                products=(first["product_id"],),
            )
        )
    return rings


def _flood_bursts(hours: np.ndarray, accounts: list[str],
                  settings: GraphSettings) -> list[tuple[int, int, tuple[str, ...]]]:
    """The floods among one shop's undone orders (`hours` sorted, `accounts` beside them) as
    (first, end, members): runs of consecutive orders, cut where the orders thin out.

    The runs are the single-linkage tree of the times (in one dimension: cut at the widest
    gap, then again in each part; scipy's linkage would build all n^2 distances first). A run
    is a flood when it spans at most malicious_burst_hours and holds malicious_min_orders
    undone orders of which two or more accounts each undo malicious_min_burst_account_orders
    (its members; a customer with fewer is a bystander whose cancellations fell in it). A
    flood cut at a pause (malicious_pause_ratio times its median gap) into halves that hold
    floods of their own, with their own accounts, is those floods (two competitors back to
    back); otherwise it is one, however it paces itself. Every part of the month is
    searched: a busy stretch without a flood (an honest sale day) hides none beside it."""
    longest = settings.malicious_burst_hours
    done: dict[tuple[int, int], list[tuple[int, int, tuple[str, ...]]]] = {}
    # (lo, hi, None) is a run to look at; (lo, hi, (cut, long, members, paused)) one whose
    # halves are done and whose own verdict waits on theirs
    stack: list[tuple] = [(0, len(hours), None)]
    while stack:  # post-order without recursion: a month of orders can nest deep
        lo, hi, split = stack.pop()
        if split is not None:
            cut, long, members, paused = split
            parts = done.pop((lo, cut)) + done.pop((cut, hi))
            theirs = [m for _, _, ms in parts for m in ms]
            own = paused and len(parts) >= 2 and len(theirs) == len(set(theirs)) == len(members)
            done[lo, hi] = parts if long or own else [(lo, hi, members)]
            continue
        if hi - lo < settings.malicious_min_orders:
            done[lo, hi] = []
            continue
        long = hours[hi - 1] - hours[lo] > longest
        members = () if long else tuple(sorted(
            a for a, n in Counter(accounts[lo:hi]).items()
            if n >= settings.malicious_min_burst_account_orders))
        if not long and len(members) < 2:
            done[lo, hi] = []  # neither it nor any part of it is a flood
            continue
        gaps = np.diff(hours[lo:hi])
        cut = lo + 1 + int(np.argmax(gaps))
        paused = bool(gaps.max() >= settings.malicious_pause_ratio * np.median(gaps))
        stack += [(lo, hi, (cut, long, members, paused)), (lo, cut, None), (cut, hi, None)]
    return done[0, len(hours)]


def malicious_rings(shop_orders: pl.DataFrame, settings: GraphSettings) -> list[Ring]:
    """A shop flooded by a few accounts whose orders are almost all cancelled or refunded,
    in one burst.

    shop_orders: one row per order of a heavy canceller (an account with at least
    malicious_min_account_orders orders at the shop, malicious_min_cancel_share of them
    undone) at that shop: account_id, shop_id, created_at, is_cancel_or_refund and, when
    known, is_arbitrage (refunded soon after its commission settled, programme.toml's
    arbitrage_hours). Such a refund is no flood's: a competitor has no commission to wait
    for, a distributor's alt collecting it (self-referral) does.
    Each flood among a shop's undone orders (_flood_bursts) is a ring of its members; the
    evidence quotes the span their undone orders in it take."""
    if shop_orders.is_empty():
        return []
    if "is_arbitrage" not in shop_orders.columns:
        shop_orders = shop_orders.with_columns(is_arbitrage=pl.lit(False))
    rings = []
    ordered = shop_orders.sort("shop_id", "created_at", "account_id")
    for (shop,), group in ordered.group_by(["shop_id"], maintain_order=True):
        undone = group.filter(pl.col("is_cancel_or_refund") & ~pl.col("is_arbitrage"))
        if undone.height < settings.malicious_min_orders:
            continue
        times, accounts = undone["created_at"].to_list(), undone["account_id"].to_list()
        hours = (undone["created_at"] - times[0]).dt.total_seconds().to_numpy() / 3600
        for lo, hi, members in _flood_bursts(hours, accounts, settings):
            taken = set(members)
            flood = [t for t, a in zip(times[lo:hi], accounts[lo:hi], strict=True)
                     if a in taken]
            first, last = flood[0], flood[-1]
            # the ring owns its accounts' orders at the shop (as rings.csv counts them); the
            # evidence says how many of them the burst holds and how long it took
            theirs = group.filter(pl.col("account_id").is_in(list(members)))
            orders, share = theirs.height, float(theirs["is_cancel_or_refund"].mean())
            in_burst = theirs.filter(pl.col("created_at").is_between(first, last)).height
            span_en, span_zh = _span_words((last - first).total_seconds() / 3600)
            rings.append(
                Ring(
                    kind="malicious",
                    members=members,
                    strength=float(orders),
                    evidence=(
                        f"{len(members)} accounts placed {orders} orders on shop {shop}, "
                        f"{in_burst} of them within {span_en}, and cancelled or refunded "
                        f"{share:.0%} of them"
                    ),
                    evidence_zh=(
                        f"{len(members)} 个账号于店铺 {shop} 下单 {orders} 笔，其中 {in_burst} 笔"
                        f"集中在 {span_zh}内，取消或退款 {share:.0%}"
                    ),
                    shops=(shop,),
                )
            )
    return rings


def fake_shipping_rings(waybills: pl.DataFrame, shipped_by_shop: dict[str, int],
                        settings: GraphSettings) -> list[Ring]:
    """Shops whose waybills are reused, malformed or never delivered, on enough of their
    shipped orders (`shipped_by_shop`) that lost parcels cannot explain them."""
    bad = waybills.filter(pl.col("waybill_suspect"))
    rings = []
    for (shop,), group in bad.group_by(["shop_id"], maintain_order=True):
        shipped = max(shipped_by_shop.get(shop, 0), group.height)
        if (group.height < settings.fake_shipping_min_orders
                or group.height < settings.fake_shipping_min_share * shipped):
            continue
        reused = int(group["waybill_reused"].sum())
        malformed = int(group["waybill_malformed"].sum())
        undelivered = int(group["long_undelivered"].sum())
        rings.append(
            Ring(
                kind="fake_shipping",
                members=(shop,),
                strength=float(group.height),
                evidence=(
                    f"shop {shop}: of {shipped} shipped orders, {reused} share a waybill with "
                    f"another buyer, {malformed} waybills have a shape its carrier never uses, "
                    f"{undelivered} were never delivered"
                ),
                evidence_zh=(
                    f"店铺 {shop}：已发货 {shipped} 单中，{reused} 单与其他买家共用运单号，"
                    f"{malformed} 个运单号不合承运商的格式，{undelivered} 单一直未签收"
                ),
                shops=(shop,),
                meta={"orders": group["order_id"].to_list()},
            )
        )
    return rings


def deep_chain_rings(tree: pl.DataFrame, settings: GraphSettings) -> list[Ring]:
    """Referral trees grown past the levels the programme allows."""
    deep = tree.filter(pl.col("referral_depth") > settings.deep_chain_depth)
    rings = []
    for (root,), group in deep.group_by(["root_id"], maintain_order=True):
        members = tuple(sorted(group["account_id"].to_list()))
        depth = int(group["referral_depth"].max())
        rings.append(
            Ring(
                kind="deep_chain",
                members=members,
                strength=float(depth),
                evidence=(
                    f"referral tree of {root} reaches level {depth}; {len(members)} accounts "
                    f"sit below level {settings.deep_chain_depth}"
                ),
                evidence_zh=(
                    f"{root} 的推荐树深达第 {depth} 级；{len(members)} 个账号在允许的第 "
                    f"{settings.deep_chain_depth} 级以下"
                ),
                meta={"owner": root},
            )
        )
    return rings


def merge_rings(candidates: list[Ring]) -> list[Ring]:
    """Union candidates of one kind that share at least half of the smaller one's members,
    until no two rings of a kind do: two groups that each grew by absorbing candidates can
    come to overlap (a 23-account brushing ring inside a 36-account one, published as two)."""
    merged: list[Ring] = []
    for kind in RING_KINDS:
        groups = [r for r in candidates if r.kind == kind]
        while True:
            fewer = _merge_pass(groups)
            if len(fewer) == len(groups):
                break
            groups = fewer
        merged.extend(fewer)
    for ring in merged:
        ring.ring_id = ring_id_for(ring.kind, ring.members)
    return sorted(merged, key=_ring_order)


def _ring_order(ring: Ring) -> tuple:
    """Rings as detect_rings returns them: by kind, strongest first, then by id."""
    return RING_KINDS.index(ring.kind), -ring.strength, ring.ring_id


def _merge_pass(rings: list[Ring]) -> list[Ring]:
    """One pass of merge_rings over rings of one kind, strongest first."""
    # the evidence breaks the last ties, so the order candidates arrive in never decides
    # which of them a merged ring quotes (a rerun quoted other products for 15 of 5,988)
    pool = sorted(rings, key=_pool_order)
    groups: list[Ring] = []
    group_members: list[set[str]] = []
    groups_of: dict[str, list[int]] = {}  # account -> the groups holding it, oldest first
    for ring in pool:
        members = set(ring.members)
        overlaps = Counter(g for m in members for g in groups_of.get(m, ()))
        target = next((g for g in sorted(overlaps)
                       if overlaps[g] >= 0.5 * min(len(group_members[g]), len(members))), None)
        if target is None:
            groups.append(_copy(ring))
            group_members.append(members)
            for m in members:
                groups_of.setdefault(m, []).append(len(groups) - 1)
            continue
        for m in members - group_members[target]:
            groups_of.setdefault(m, []).append(target)
        group_members[target] |= members
        groups[target].members = tuple(sorted(group_members[target]))
        _absorb(groups[target], ring)
    return groups


def _copy(ring: Ring) -> Ring:
    """A candidate as the start of a merged ring (its meta its own, not the candidate's)."""
    return Ring(**{**ring.__dict__, "meta": dict(ring.meta)})


def _pool_order(ring: Ring) -> tuple:
    return -ring.strength, ring.members, ring.evidence, ring.evidence_zh


def _absorb(group: Ring, ring: Ring) -> None:
    """What a merged ring takes from a candidate besides its members: shops, products, the
    strongest strength and up to four pieces of evidence."""
    group.shops = tuple(sorted(set(group.shops) | set(ring.shops)))
    group.products = tuple(sorted(set(group.products) | set(ring.products)))
    group.strength = max(group.strength, ring.strength)
    if ring.evidence not in group.evidence and group.evidence.count(";") < 3:
        group.evidence += "; " + ring.evidence
        group.evidence_zh += "；" + ring.evidence_zh


# identifiers many unrelated households hold (a building, an IP network, a 7-digit phone
# range): sharing one with a farm is no sign of belonging to it
COARSE_ID_TYPES = frozenset({"addr_building", "ip_net", "phone_range"})
# identifiers of one person or one household
FINE_ID_TYPES = ("addr_strict", "device", "payer", "phone", "receiver")


def ring_identifiers(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """grain: one row per (account_id, id_type, id_value) of the fine types and IPs: what
    identity rings quote and what keeps an account in a brushing ring (drop_coarse_joiners).
    Listed from FINE_ID_TYPES, so a fine type is never missing here (the receiver was)."""
    return warehouse.query(
        con, "select account_id, id_type, id_value from intermediate.account_identifiers "
        "where list_contains($types, id_type)", {"types": [*FINE_ID_TYPES, "ip"]})


def drop_coarse_joiners(rings: list[Ring], candidates: list[Ring],
                        identifiers: pl.DataFrame) -> list[Ring]:
    """Brushing rings without the accounts that joined only as a farm's neighbours.

    A farm also buys popular products (camouflage) and honest shoppers buy what it brushes;
    in its building some neighbours buy the same things, so "the building's accounts buying
    product X" lists them beside the farm and merging carries them into the ring. Buying a
    ring's product is no sign of belonging (brushing is done so that strangers buy it); the
    resources behind the accounts are. So an account that came in only through a coarse
    identifier stays only if it shares a fine identifier (room, device, payer, phone) with
    a member who stays: one found without a coarse identifier (by a fine one, or by
    behaviour: a dense block, a cohort), or of the strongest candidate when every one is
    coarse. `candidates` are merge_rings' input; `identifiers` (account_id, id_type,
    id_value) need only cover the fine types."""
    rings_of: dict[str, list[int]] = {}
    for i, ring in enumerate(rings):
        if ring.kind == "brushing":
            for m in ring.members:
                rings_of.setdefault(m, []).append(i)
    parts: dict[int, list[Ring]] = {}
    for cand in candidates:
        if cand.kind != "brushing" or not cand.members:
            continue
        for i in rings_of.get(cand.members[0], ()):
            if set(cand.members) <= set(rings[i].members):
                parts.setdefault(i, []).append(cand)
    parts = {i: cands for i, cands in parts.items()
             if any(c.meta.get("id_type") in COARSE_ID_TYPES for c in cands)}
    # only these rings' members: every identifier row in Python was ~2 s at 250k accounts
    wanted = sorted({m for i in parts for m in rings[i].members})
    rows = identifiers.filter(pl.col("id_type").is_in(FINE_ID_TYPES)
                              & pl.col("account_id").is_in(wanted))
    fine: dict[str, set[tuple[str, str]]] = {}
    for account, id_type, id_value in rows.select("account_id", "id_type", "id_value").iter_rows():
        fine.setdefault(account, set()).add((id_type, id_value))
    changed = False
    for i, cands in parts.items():
        coarse = [c for c in cands if c.meta.get("id_type") in COARSE_ID_TYPES]
        anchors = ([c for c in cands if c.meta.get("id_type") not in COARSE_ID_TYPES]
                   or [min(coarse, key=lambda c: (-c.strength, c.members, c.evidence))])
        kept = {m for c in anchors for m in c.members}
        rest = set(rings[i].members) - kept
        held = set().union(*(fine.get(m, set()) for m in kept))
        while rest:  # a neighbour's link may run through another account that stays
            linked = {m for m in rest if fine.get(m, set()) & held}
            if not linked:
                break
            kept |= linked
            rest -= linked
            held |= set().union(*(fine[m] for m in linked))
        if rest:
            # the ring quotes, and takes its products, shops and strength from, only the
            # candidates it still holds whole: a building group that brought a dropped
            # neighbour in counted him in its evidence
            whole = sorted((c for c in cands if set(c.members) <= kept), key=_pool_order)
            pruned = _copy(whole[0])
            for cand in whole[1:]:
                _absorb(pruned, cand)
            pruned.members = tuple(sorted(kept))
            pruned.ring_id = ring_id_for(pruned.kind, pruned.members)
            rings[i] = pruned
            changed = True
    if changed:
        rings.sort(key=_ring_order)
    return rings


def fraudar_weights(cols: np.ndarray, n_cols: int) -> np.ndarray:
    """FRAUDAR's column weighting: a cell bought by many down-weighted by 1/log(degree + 5),
    so camouflage purchases of popular items add little density."""
    return 1.0 / np.log(np.bincount(cols, minlength=n_cols)[cols] + 5.0)


def _by_node(ends: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """A CSR index of edges by one end: edge ids `order[indptr[v]:indptr[v + 1]]` are node v's.
    scipy's COO -> CSR conversion is a linear counting sort (argsort took ~1 s per 6M edges)."""
    index = sparse.csr_array((np.ones(len(ends), dtype=np.int8), (ends, np.arange(len(ends)))),
                             shape=(n, len(ends)))
    return index.indptr, index.indices


def _renumber(ids: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """np.unique(ids, return_inverse=True) for ids in 0..n-1, by counting instead of sorting."""
    present = np.bincount(ids, minlength=n) > 0
    return np.flatnonzero(present), (np.cumsum(present) - 1)[ids]


def _incident(nodes: np.ndarray, indptr: np.ndarray, order: np.ndarray) -> np.ndarray:
    """The edges of `nodes`, from a CSR index (`order` sorts the edges by node)."""
    starts, lengths = indptr[nodes], indptr[nodes + 1] - indptr[nodes]
    offsets = np.repeat(starts - np.cumsum(lengths) + lengths, lengths)
    return order[offsets + np.arange(int(lengths.sum()))]


def weighted_core(rows: np.ndarray, cols: np.ndarray, weight: np.ndarray, n_rows: int,
                  n_cols: int, floor: float, alive: np.ndarray | None = None) -> np.ndarray:
    """Which edges survive repeatedly dropping every node whose weighted degree is below
    `floor`. Every node of a block with density (weight per node) >= floor has at least that
    much weight inside it, so such blocks lie wholly in this core and peeling only the core
    finds them at a fraction of the cost.

    Whole passes over the edges drop the bulk; once a pass drops under 5 % of them, only the
    edges of the nodes that fell below the floor are followed (at 10M orders the tail was a
    dozen more whole passes that each dropped a few hundred edges)."""
    edges = np.arange(len(rows)) if alive is None else np.flatnonzero(alive)
    while True:
        r, c, w = rows[edges], cols[edges], weight[edges]
        row_degree = np.bincount(r, weights=w, minlength=n_rows)
        col_degree = np.bincount(c, weights=w, minlength=n_cols)
        keep = (row_degree[r] >= floor) & (col_degree[c] >= floor)
        dropped = len(keep) - int(keep.sum())
        if dropped == 0 or dropped < 0.05 * len(keep):
            break
        edges = edges[keep]
    live = np.ones(len(edges), dtype=bool)
    if dropped:
        (row_ptr, row_order), (col_ptr, col_order) = _by_node(r, n_rows), _by_node(c, n_cols)
        row_gone, col_gone = np.zeros(n_rows, dtype=bool), np.zeros(n_cols, dtype=bool)
        low_rows = np.unique(r[row_degree[r] < floor])
        low_cols = np.unique(c[col_degree[c] < floor])
        while len(low_rows) or len(low_cols):
            row_gone[low_rows], col_gone[low_cols] = True, True
            cut = np.concatenate([_incident(low_rows, row_ptr, row_order),
                                  _incident(low_cols, col_ptr, col_order)])
            cut = np.unique(cut[live[cut]])
            live[cut] = False
            np.subtract.at(row_degree, r[cut], w[cut])
            np.subtract.at(col_degree, c[cut], w[cut])
            touched_rows, touched_cols = np.unique(r[cut]), np.unique(c[cut])
            low_rows = touched_rows[(row_degree[touched_rows] < floor) & ~row_gone[touched_rows]]
            low_cols = touched_cols[(col_degree[touched_cols] < floor) & ~col_gone[touched_cols]]
    core = np.zeros(len(rows), dtype=bool)
    core[edges[live]] = True
    return core


def fraudar_peel(rows: np.ndarray, cols: np.ndarray, n_rows: int, n_cols: int,
                 weight: np.ndarray | None = None, slack: float = 0.3, exact_below: int = 20_000,
                 round_share: float = 0.05) -> tuple[np.ndarray, np.ndarray, float]:
    """FRAUDAR (Hooi et al., KDD 2016): greedily peel the node whose removal costs least
    edge weight and keep the densest remaining block. Edge weights default to
    `fraudar_weights` of these edges.

    While more than `exact_below` nodes remain, each round peels in one vectorised step every
    node within `slack` of the least costly one, and at least the cheapest `round_share` of
    them (a relaxation of the greedy step: the bulk of honest shoppers goes in about a hundred
    numpy rounds, long before a farm's well-connected accounts become the cheapest); the last
    nodes, where a block small enough to be a farm lives, are peeled one at a time exactly.
    Returns the block's row and column indices and its density (weight per node of the rows
    and columns that have edges)."""
    if weight is None:
        weight = fraudar_weights(cols, n_cols)
    # only nodes with edges take part: isolated ones would be peeled first at no gain
    row_ids, rows = _renumber(rows, n_rows)
    col_ids, cols = _renumber(cols, n_cols)
    n_rows, n = len(row_ids), len(row_ids) + len(col_ids)
    head, tail, w = rows, cols + n_rows, np.asarray(weight, dtype=np.float64)
    priority = np.bincount(head, weights=w, minlength=n) + np.bincount(tail, weights=w, minlength=n)
    alive = np.ones(n, dtype=bool)
    peeled_at = np.full(n, np.iinfo(np.int64).max)  # the step each node was peeled in
    live = np.arange(n)
    total, size, step = float(w.sum()), n, 0
    best, best_step = total / max(size, 1), 0
    while size > exact_below:
        costs = priority[live]
        # at least the cheapest `round_share` of the nodes per round: a bounded number of rounds
        share = int(len(costs) * round_share)
        cut_at = max(costs.min() * (1.0 + slack), np.partition(costs, share)[share])
        batch = live[costs <= cut_at + 1e-12]
        if len(batch) >= size:
            break  # the rest are all alike: the exact steps below settle them
        alive[batch], peeled_at[batch] = False, step
        live = live[alive[live]]
        cut = ~(alive[head] & alive[tail])
        cut_w = w[cut]
        priority -= (np.bincount(head[cut], weights=cut_w, minlength=n)
                     + np.bincount(tail[cut], weights=cut_w, minlength=n))
        head, tail, w = head[~cut], tail[~cut], w[~cut]
        total -= float(cut_w.sum())
        size -= len(batch)
        step += 1
        if total / size > best:
            best, best_step = total / size, step
    # exact greedy on what is left: a heap of (cost, node) with stale entries skipped
    src, dst = np.concatenate([head, tail]), np.concatenate([tail, head])
    indptr, order = _by_node(src, n)
    dst, w2 = dst[order], np.concatenate([w, w])[order]
    heap = [(float(priority[i]), int(i)) for i in live]
    heapq.heapify(heap)
    while heap and size > 1:
        value, node = heapq.heappop(heap)
        if not alive[node] or value != priority[node]:
            continue
        alive[node], peeled_at[node] = False, step
        total -= priority[node]
        size -= 1
        step += 1
        for j in range(indptr[node], indptr[node + 1]):
            other = dst[j]
            if alive[other]:
                priority[other] -= w2[j]
                heapq.heappush(heap, (float(priority[other]), other))
        if total / size > best:
            best, best_step = total / size, step
    nodes = np.flatnonzero(peeled_at >= best_step)
    return row_ids[nodes[nodes < n_rows]], col_ids[nodes[nodes >= n_rows] - n_rows], best


@dataclass
class BuyerCells:
    """The buyer x (product, day) graph the dense-block peel runs on, as numbers: edge i joins
    buyer `rows[i]` to cell `cols[i]`. `buyers` names buyer r in row r; `cells` gives each
    cell's product_id, day and shop_id (a row per shop, should one product-day have two);
    `product_buyers` counts each product's buyers in the graph."""

    rows: np.ndarray
    cols: np.ndarray
    buyers: pl.Series
    cells: pl.DataFrame
    product_buyers: pl.DataFrame

    @classmethod
    def from_warehouse(cls, con: duckdb.DuckDBPyConnection) -> BuyerCells:
        """Numbered in DuckDB (sql/intermediate/dense_block_cells.sql): only integers and the
        distinct buyers and cells reach Python."""
        con.execute("create or replace temp table _dense_block_cells as\n"
                    + warehouse.sql_text("intermediate", "dense_block_cells"))
        try:
            # in a fixed order: the peel's float sums, and so its ties, follow the edge order
            edges = con.sql("select r, c from _dense_block_cells order by r, c").fetchnumpy()
            buyers = warehouse.query(con, "select any_value(buyer_id) as buyer_id "
                                     "from _dense_block_cells group by r order by r")
            cells = warehouse.query(con, "select distinct c, product_id, day, shop_id "
                                    "from _dense_block_cells order by c, shop_id")
            product_buyers = warehouse.query(con, "select product_id, count(distinct r) as buyers "
                                             "from _dense_block_cells group by 1 order by 1")
        finally:
            con.execute("drop table if exists _dense_block_cells")
        return cls(np.asarray(edges["r"], dtype=np.int64), np.asarray(edges["c"], dtype=np.int64),
                   buyers["buyer_id"], cells, product_buyers)


def dense_block_rings(graph: BuyerCells, settings: GraphSettings) -> list[Ring]:
    """Brushing seen as activity aggregation alone: dense blocks in the buyer x (product,
    day) graph, peeled FRAUDAR-style. A block must be more than a handful of accounts, span
    several product-days, be far denser than the graph as a whole and stay a small share of
    all buyers, so it never returns a crowd or most of the graph."""
    rows, cols = graph.rows, graph.cols
    if len(rows) < 10:
        return []
    n_rows, n_cols = len(graph.buyers), int(cols.max()) + 1
    # products numbered by their row in product_buyers (one row each, sorted), for "how many
    # block accounts bought the product" against its share of all buyers
    numbered = graph.product_buyers.with_row_index("p")
    cell_product = (graph.cells.unique("c", keep="first", maintain_order=True)
                    .join(numbered, on="product_id", maintain_order="left")["p"].to_numpy().astype(np.int64))
    edge_product = cell_product[cols]
    rate = numbered["buyers"].to_numpy() / n_rows
    weight = fraudar_weights(cols, n_cols)
    whole = float(weight.sum()) / (n_rows + n_cols)
    # a block below the density gate is never kept, so only its core needs peeling
    alive = weighted_core(rows, cols, weight, n_rows, n_cols, settings.dense_block_gate * whole)
    rings = []
    for _ in range(settings.dense_blocks):
        if alive.sum() < 10:
            break
        block_rows, block_cols, density = fraudar_peel(rows[alive], cols[alive], n_rows, n_cols,
                                                       weight[alive])
        in_block = np.isin(rows, block_rows) & np.isin(cols, block_cols)
        alive = weighted_core(rows, cols, weight, n_rows, n_cols, settings.dense_block_gate * whole,
                              alive & ~in_block)
        if not (settings.min_co_buyers <= len(block_rows) <= settings.dense_block_max_share * n_rows
                and len(block_cols) >= 2 and density >= settings.dense_block_gate * whole):
            continue
        members = tuple(sorted(graph.buyers.gather(block_rows).to_list()))
        block = graph.cells.filter(pl.col("c").is_in(block_cols))
        # the block's accounts must concentrate on its products far beyond their popularity:
        # its accounts per product, on any day, against the product's share of all buyers
        on_block_products = (np.isin(rows, block_rows)
                             & np.isin(edge_product, np.unique(cell_product[block_cols])))
        pairs = np.unique(np.stack([edge_product[on_block_products], rows[on_block_products]]), axis=1)
        bought, accounts = np.unique(pairs[0], return_counts=True)
        if len(bought) == 0:
            continue
        top = int(np.argmax(accounts))  # ties: the first product in sorted order
        if (accounts[top] / len(block_rows)) / rate[bought[top]] < settings.min_lift:
            continue
        rings.append(Ring(
            kind="brushing", members=members, strength=float(density / max(whole, 1e-9)),
            evidence=(f"{len(members)} accounts form a dense block on {block['product_id'].n_unique()} "
                      f"product(s) over {block['day'].n_unique()} day(s) ({density / whole:.1f}x the "
                      "graph's density, popular products down-weighted)"),
            evidence_zh=(f"{len(members)} 个账号在 {block['product_id'].n_unique()} 个商品、"
                         f"{block['day'].n_unique()} 天内构成稠密的购买块（密度为全图的 "
                         f"{density / whole:.1f} 倍，热门商品已降权）"),
            shops=tuple(block["shop_id"].unique().sort().to_list()),
            products=tuple(block["product_id"].unique().sort().to_list()),
        ))
    return rings


def invite_loops(components: pl.DataFrame, invites: pl.DataFrame) -> pl.DataFrame:
    """grain: one row per account on an invite loop once the accounts the identity graph says
    are one person are contracted into one node: someone inviting their own other account
    (a self-loop) or persons inviting each other round a cycle. NetworkX runs only on the
    invite edges that touch a multi-account identity group."""
    schema = {"account_id": pl.String, "invite_loop": pl.String}
    if components.is_empty() or invites.is_empty():
        return pl.DataFrame(schema=schema)
    person = dict(zip(components["account_id"], components["component"].cast(pl.String), strict=True))
    grouped = list(person)
    touched = invites.filter(pl.col("inviter_id").is_in(grouped) | pl.col("account_id").is_in(grouped))
    graph = nx.DiGraph()
    for inviter, account in touched.iter_rows():
        graph.add_edge(person.get(inviter, "a:" + inviter), person.get(account, "a:" + account))
    loops: dict[str, str] = {}
    for node in nx.nodes_with_selfloops(graph):
        loops[node] = "invites own account"
    for scc in nx.strongly_connected_components(graph):
        if len(scc) > 1:
            for node in scc:
                loops.setdefault(node, "invite cycle between persons")
    if not loops:
        return pl.DataFrame(schema=schema)
    rows = [
        (account, loops[person.get(account, "a:" + account)])
        for pair in touched.iter_rows() for account in pair
        if person.get(account, "a:" + account) in loops
    ]
    return pl.DataFrame(rows, schema=schema, orient="row").unique().sort("account_id")


def commission_to_self(components: pl.DataFrame, commissions: pl.DataFrame) -> pl.DataFrame:
    """grain: one row per order whose commission flows up to the buyer's own person: a
    beneficiary the identity graph puts in the buyer's identity group."""
    if components.is_empty() or commissions.is_empty():
        return pl.DataFrame(schema={"order_id": pl.String, "self_commission_level": pl.Int64})
    person = components.select("account_id", "component")
    return (
        commissions.join(person.rename({"account_id": "buyer_id", "component": "buyer_person"}),
                         on="buyer_id")
        .join(person.rename({"account_id": "beneficiary_id", "component": "beneficiary_person"}),
              on="beneficiary_id")
        .filter((pl.col("buyer_person") == pl.col("beneficiary_person"))
                & (pl.col("buyer_id") != pl.col("beneficiary_id")))
        .group_by("order_id").agg(pl.col("level").min().cast(pl.Int64).alias("self_commission_level"))
        .sort("order_id")
    )


def annotate_density(rings: list[Ring], pairs: pl.DataFrame) -> None:
    """Each ring's density: the share of its member pairs that share an identifier (networkx's
    density of the ring's own accounts and links, counted for every ring in one pass: a
    graph built per ring cost ~2 s at 10M orders for a count)."""
    rows = [(i, m) for i, r in enumerate(rings) if r.kind != "fake_shipping" for m in r.members]
    for ring in rings:
        ring.meta["density"] = 0.0
    if not rows or pairs.is_empty():
        return
    members = pl.DataFrame(rows, schema=["ring", "account"], orient="row")
    links = (
        pairs.select(pl.min_horizontal("account_a", "account_b").alias("account_a"),
                     pl.max_horizontal("account_a", "account_b").alias("account_b"))
        .filter(pl.col("account_a") != pl.col("account_b"))
        .join(members.rename({"account": "account_a"}), on="account_a")
        .join(members.rename({"account": "account_b"}), on=["account_b", "ring"])
        .unique()
        .group_by("ring").len()
    )
    for i, edges in links.iter_rows():
        n = len(rings[i].members)
        rings[i].meta["density"] = round(2 * edges / (n * (n - 1)), 6)


# --------------------------------------------------------------------------- stage


_REFERRAL_RELATIONS = """
-- grain: one row per (distributor_id, account_id): the accounts in a distributor's circle,
-- those buying through its link and those below it in the invite tree down to the levels
-- the programme pays (alts invited by alts earn it level 2 and 3 commission)
with recursive invites as (
    select inviter_id, account_id from staging.accounts
    where inviter_id is not null and inviter_id <> account_id
),
downline(distributor_id, account_id, depth) as (
    select inviter_id, account_id, 1 from invites
    union all
    select i.inviter_id, d.account_id, d.depth + 1
    from downline d join invites i on i.account_id = d.distributor_id
    where d.depth < $levels
)
select distinct distributor_id, account_id from (
    select referrer_id as distributor_id, buyer_id as account_id from intermediate.order_keys
    where referrer_id is not null
    union all
    select distributor_id, account_id from downline
)
where distributor_id <> account_id
order by 1, 2
"""


def referral_relations(con: duckdb.DuckDBPyConnection, levels: int) -> pl.DataFrame:
    """(distributor_id, account_id): whom a distributor earns on, the self-referral circles."""
    return warehouse.query(con, _REFERRAL_RELATIONS, {"levels": levels})


# an order of referral_checks r refunded soon after its commission settled (佣金套利)
ARBITRAGE_REFUND = "r.refund_after_settle_h between 0 and $arbitrage_hours"


def detect_rings(con: duckdb.DuckDBPyConnection, settings: GraphSettings,
                 components: pl.DataFrame) -> list[Ring]:
    """Run every detector over the intermediate tables and merge their candidates.
    `components` is `identity_components` of `linking_pairs` (the caller reuses it)."""
    q = lambda sql: warehouse.query(con, sql)  # noqa: E731
    accounts = q("select * from intermediate.account_features")
    identifiers = ring_identifiers(con)
    scan = q("select * from intermediate.group_product_scan")
    relations = referral_relations(con, settings.deep_chain_depth)
    links = warehouse.query(
        con, "select account_a, account_b, max_weight, shared_types from intermediate.account_pairs "
        "where max_weight >= $min_weight", {"min_weight": settings.self_referral_min_weight})
    alt_facts = warehouse.query(
        con, "select a.account_id, a.registered_at, a.inviter_id, p.phone_prefix7 as phone_range, "
        f" count(*) filter (where {ARBITRAGE_REFUND}) as arbitrage_orders "
        "from staging.accounts a left join intermediate.referral_checks r on r.buyer_id = a.account_id "
        "left join intermediate.norm_phone p on p.phone_raw = a.phone "
        "group by all", {"arbitrage_hours": settings.arbitrage_hours})
    # order_features already counts each buyer's orders and cancellations per shop: only the
    # pairs malicious_rings can use are read (a 10M-order window has ~7M pairs, ~1k of these)
    shop_orders = warehouse.query(
        con,
        "with heavy as (select distinct buyer_id, shop_id from intermediate.order_features "
        " where orders_at_shop >= $min_orders and cancel_share_at_shop >= $min_cancel_share) "
        "select k.buyer_id as account_id, k.shop_id, k.created_at, k.is_cancel_or_refund, "
        f" coalesce({ARBITRAGE_REFUND}, false) as is_arbitrage "
        "from intermediate.order_keys k semi join heavy using (buyer_id, shop_id) "
        "left join intermediate.referral_checks r using (order_id) "
        "order by k.shop_id, k.created_at, account_id, k.order_id",
        {"min_orders": settings.malicious_min_account_orders,
         "min_cancel_share": settings.malicious_min_cancel_share,
         "arbitrage_hours": settings.arbitrage_hours},
    )
    waybills = q(
        "select * from intermediate.waybill_flags where waybill_suspect"
    )
    shipped_by_shop = dict(con.execute(
        "select shop_id, count(shipped_at) from intermediate.order_keys group by 1").fetchall())
    tree = q("select * from intermediate.referral_tree")
    cohorts = q("select * from intermediate.behaviour_cohorts")
    candidates = (
        co_buying_rings(scan, settings)
        + identity_rings(components, accounts, identifiers, settings)
        + self_referral_rings(relations, links, alt_facts, settings)
        + dense_block_rings(BuyerCells.from_warehouse(con), settings)
        + behaviour_cohort_rings(cohorts)
        + malicious_rings(shop_orders, settings)
        + fake_shipping_rings(waybills, shipped_by_shop, settings)
        + deep_chain_rings(tree, settings)
    )
    rings = drop_coarse_joiners(merge_rings(candidates), candidates, identifiers)
    annotate_density(rings, pairs_within(con, sorted({m for r in rings for m in r.members})))
    log.info("rings: %d candidates merged into %d", len(candidates), len(rings))
    return rings
