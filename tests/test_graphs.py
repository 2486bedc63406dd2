from datetime import datetime, timedelta

import duckdb
import numpy as np
import polars as pl
import pytest

from orderguard import graphs


def scan_row(n, k, rate, id_value="room-1", product="P1"):
    return {
        "id_type": "addr_strict", "id_value": id_value, "n_accounts": n, "product_id": product,
        "shop_id": "S1", "co_buyers": k, "buyer_ids": [f"U{i}" for i in range(k)],
        "product_buyers": int(rate * 10000), "product_buyer_rate": rate,
    }


def test_co_buying_far_beyond_popularity_is_a_ring_but_a_popular_product_is_not():
    settings = graphs.GraphSettings()
    scan = pl.DataFrame([
        scan_row(12, 12, 0.002, "farm-room"),          # 12 accounts at one room, one niche item
        scan_row(40, 6, 0.05, "office", "P2"),          # an office buying a popular item
        scan_row(300, 25, 0.05, "campus", "P3"),         # a campus: expected 15
    ])
    rings = graphs.co_buying_rings(scan, settings)
    assert [len(r.members) for r in rings] == [12]
    assert "12 of 12 accounts" in rings[0].evidence
    assert "12 个账号中有 12 个" in rings[0].evidence_zh  # the same facts for support, in Chinese


def test_a_rings_evidence_does_not_depend_on_the_order_the_scan_rows_arrive_in():
    """One farm room buying several niche products scores them alike (their rates clip to
    one floor); whichever order the warehouse hands the rows over in, support reads the same
    evidence, as a rerun of the night must give."""
    settings = graphs.GraphSettings()
    rows = [scan_row(12, 12, 0.00005 + i * 0.00001, "farm-room", f"P{i}") for i in range(6)]
    seen = set()
    for order in (rows, rows[::-1], rows[3:] + rows[:3]):
        rings = graphs.merge_rings(graphs.co_buying_rings(pl.DataFrame(order), settings))
        assert len(rings) == 1
        seen.add((rings[0].evidence, rings[0].evidence_zh, rings[0].products))
    assert len(seen) == 1
    assert "P0" in seen.pop()[0]  # the evidence quotes the products in their order


def test_a_farms_building_neighbour_buying_its_camouflage_product_stays_out_of_the_ring():
    """Five farm accounts in one room brush niche P1 and also buy popular P2; a neighbour in
    the building buys P2 too, so "the building's buyers of P2" lists him beside the farm. He
    shares no room, device, payer or phone with the farm and must not join its ring; a farm
    account in another room of the building that shares a device with the farm stays."""
    farm = [f"F{i}" for i in range(1, 6)]

    def row(id_type, id_value, n, product, rate, buyers):
        return {"id_type": id_type, "id_value": id_value, "n_accounts": n, "product_id": product,
                "shop_id": "S1", "co_buyers": len(buyers), "buyer_ids": sorted(buyers),
                "product_buyers": int(rate * 10000), "product_buyer_rate": rate}

    scan = pl.DataFrame([
        row("addr_strict", "room-1", 5, "P1", 0.001, farm),
        row("addr_strict", "room-1", 5, "P2", 0.02, farm),
        row("addr_building", "building-1", 10, "P2", 0.02, [*farm, "F6", "N1"]),
    ])
    identifiers = pl.DataFrame(
        [(f, "addr_strict", "room-1") for f in farm]
        + [("F1", "device", "d1"), ("F6", "device", "d1"), ("F6", "addr_strict", "room-7"),
           ("N1", "addr_strict", "room-9"), ("N1", "device", "d9"), ("N1", "ip", "cgnat")]
        + [("F2", "ip", "cgnat")],  # a carrier IP is no fine link
        schema=["account_id", "id_type", "id_value"], orient="row")
    candidates = graphs.co_buying_rings(scan, graphs.GraphSettings())
    merged = graphs.merge_rings(candidates)
    assert [r.members for r in merged] == [(*farm, "F6", "N1")]  # the merge alone takes him in
    merged_evidence = merged[0].evidence, merged[0].evidence_zh
    rings = graphs.drop_coarse_joiners(merged, candidates, identifiers)
    assert [r.members for r in rings] == [(*farm, "F6")]
    assert rings[0].ring_id == graphs.ring_id_for("brushing", (*farm, "F6"))
    # support reads the evidence: the building's group counted the neighbour ("7 of 10
    # accounts sharing one building"), so the ring without him quotes only its room's
    assert "sharing one building" in merged_evidence[0] and "楼栋" in merged_evidence[1]
    room = sorted((c for c in candidates if c.meta.get("id_type") == "addr_strict"),
                  key=lambda c: -c.strength)
    assert rings[0].evidence == "; ".join(c.evidence for c in room)
    assert rings[0].evidence_zh == "；".join(c.evidence_zh for c in room)


def test_the_rings_read_every_fine_identifier_and_no_coarse_one():
    """A farm shipping to one receiver (name and phone) is linked by it: an account that
    shares only that with the farm stays in the ring, so the receiver must reach
    drop_coarse_joiners (it was never loaded)."""
    con = duckdb.connect()
    con.execute("create schema intermediate")
    con.execute("create table intermediate.account_identifiers as select * from (values "
                "('A', 'receiver', 'r1'), ('A', 'device', 'd1'), ('A', 'addr_building', 'b1'), "
                "('A', 'ip_net', 'n1'), ('A', 'phone_range', 'p1'), ('A', 'ip', 'i1'), "
                "('A', 'addr_strict', 's1'), ('A', 'payer', 'y1'), ('A', 'phone', 'p9')) "
                "t(account_id, id_type, id_value)")
    read = set(graphs.ring_identifiers(con)["id_type"])
    assert read == {*graphs.FINE_ID_TYPES, "ip"}
    assert not read & graphs.COARSE_ID_TYPES


def test_a_ring_seen_only_through_a_building_keeps_its_strongest_candidate():
    """With no fine identifier or behaviour candidate, the strongest building candidate is the
    ring; weaker ones on other products add only accounts linked to it by a fine identifier."""
    def cand(members, strength, product):
        return graphs.Ring("brushing", tuple(members), strength, f"building {product}",
                           products=(product,), meta={"id_type": "addr_building"})

    farm = ("F1", "F2", "F3", "F4", "F5")
    candidates = [cand(farm, 30, "P1"), cand((*farm[:4], "N1", "F6"), 9, "P2")]
    identifiers = pl.DataFrame({"account_id": ["F6", "F3"], "id_type": ["payer", "payer"],
                                "id_value": ["pay-1", "pay-1"]})
    rings = graphs.drop_coarse_joiners(graphs.merge_rings(candidates), candidates, identifiers)
    assert [r.members for r in rings] == [(*farm, "F6")]


def test_identity_components_need_a_strong_link_or_two_families():
    pairs = pl.DataFrame({
        "account_a": ["A", "B", "X"], "account_b": ["B", "C", "Y"],
        "link_weight": [1.0, 0.4, 0.2], "n_families": [1, 2, 1],
        "shared_types": ["device", "ip,addr_strict", "ip"], "strong_weight": [1.0, 0.0, 0.0],
    })
    comps = graphs.identity_components(pairs, graphs.GraphSettings())
    groups = comps.group_by("component").agg(pl.col("account_id").sort()).get_column("account_id")
    assert sorted(g.to_list() for g in groups) == [["A", "B", "C"]]


def test_overlapping_candidates_of_one_kind_merge_and_ids_are_stable():
    a = graphs.Ring("brushing", ("U1", "U2", "U3", "U4"), 20, "room")
    b = graphs.Ring("brushing", ("U3", "U4", "U5"), 12, "device")
    c = graphs.Ring("self_referral", ("U1", "U9"), 2, "alt")
    merged = graphs.merge_rings([a, b, c])
    assert [(r.kind, r.members) for r in merged] == [
        ("brushing", ("U1", "U2", "U3", "U4", "U5")),
        ("self_referral", ("U1", "U9")),
    ]
    again = graphs.merge_rings([b, a, c])
    assert [r.ring_id for r in merged] == [r.ring_id for r in again]


def test_rings_that_grow_into_each_other_while_merging_end_as_one():
    """Two farms' candidates each absorb others until the two groups share half the smaller:
    one ring, not a 20-account ring published beside the 40-account one holding half of it."""
    def accounts(prefix):
        return tuple(f"{prefix}{i}" for i in range(10))

    a, b, c, x = accounts("A"), accounts("B"), accounts("C") + accounts("D"), accounts("X")
    candidates = [graphs.Ring("brushing", a, 10, "r1"), graphs.Ring("brushing", b, 9, "r2"),
                  graphs.Ring("brushing", a[:5] + c, 8, "r3"), graphs.Ring("brushing", b + x, 7, "r4"),
                  graphs.Ring("brushing", a + x, 6, "r5")]
    merged = graphs.merge_rings(candidates)
    assert [set(r.members) for r in merged] == [set(a + b + c + x)]


def test_deep_chain_ring_holds_accounts_below_the_allowed_levels():
    tree = pl.DataFrame({
        "account_id": ["R", "L1", "L2", "L3", "L4", "L5"],
        "root_id": ["R"] * 6,
        "referral_depth": [0, 1, 2, 3, 4, 5],
    })
    rings = graphs.deep_chain_rings(tree, graphs.GraphSettings())
    assert len(rings) == 1 and rings[0].members == ("L4", "L5")
    assert "level 5" in rings[0].evidence
    assert "第 5 级" in rings[0].evidence_zh and "第 3 级以下" in rings[0].evidence_zh


def test_a_programme_allowing_two_levels_makes_level_three_a_deep_chain(tmp_path):
    """The scan's deep-chain limit is the programme's allowed_levels, the limit the health
    marts judge trees by, not a fixed 3."""
    from orderguard import health, scan

    toml = tmp_path / "programme.toml"
    toml.write_text("[default]\nrates = [0.10, 0.05]\nallowed_levels = 2\n", "utf-8")
    settings = scan.graph_settings(health.load_programme(toml))
    tree = pl.DataFrame({"account_id": ["R", "L1", "L2", "L3"], "root_id": ["R"] * 4,
                         "referral_depth": [0, 1, 2, 3]})
    rings = graphs.deep_chain_rings(tree, settings)
    assert [r.members for r in rings] == [("L3",)]
    assert scan.graph_settings().deep_chain_depth == 3  # the packaged programme


def test_the_scorecards_arbitrage_hours_are_the_self_referral_rings_arbitrage_window(tmp_path):
    """One definition of 佣金套利 for the distributor scorecard and the self-referral rings."""
    from orderguard import health, scan

    toml = tmp_path / "programme.toml"
    toml.write_text("[default]\nrates = [0.10]\n[scorecard]\narbitrage_hours = 168\n", "utf-8")
    assert scan.graph_settings(health.load_programme(toml)).arbitrage_hours == 168
    assert scan.graph_settings().arbitrage_hours == 72  # the packaged programme


def distributor_circle(fans: int, fan_spread_min: float, alt_pairs: int, alt_spread_min: float,
                       linked_to_distributor: bool = False, arbitrage: bool = False):
    """A distributor D with `fans` invitees registered over `fan_spread_min` minutes, among
    whom `alt_pairs` pairs are linked to each other (a shared flat), registered over
    `alt_spread_min` minutes; with `linked_to_distributor` one of each pair also shares D's
    payer; with `arbitrage` each linked account refunded an order after its commission settled."""
    start = datetime(2026, 10, 1, 20, 0)
    fan_ids = [f"F{i}" for i in range(fans)]
    alt_ids = [f"A{i}" for i in range(2 * alt_pairs)]
    registered = (
        [start + timedelta(minutes=fan_spread_min * i / max(fans - 1, 1)) for i in range(fans)]
        + [start + timedelta(minutes=alt_spread_min * i / max(len(alt_ids) - 1, 1))
           for i in range(len(alt_ids))])
    relations = pl.DataFrame({"distributor_id": ["D"] * (fans + len(alt_ids)),
                              "account_id": fan_ids + alt_ids})
    links = pl.DataFrame({"account_a": alt_ids[0::2], "account_b": alt_ids[1::2],
                          "max_weight": [1.0] * alt_pairs, "shared_types": ["addr_strict,ip"] * alt_pairs})
    if linked_to_distributor:
        links = pl.concat([links, pl.DataFrame({
            "account_a": alt_ids[0::2], "account_b": ["D"] * alt_pairs,
            "max_weight": [1.0] * alt_pairs, "shared_types": ["payer"] * alt_pairs})])
    facts = pl.DataFrame({"account_id": fan_ids + alt_ids, "registered_at": registered,
                          "arbitrage_orders": [0] * fans + [int(arbitrage)] * len(alt_ids)})
    return relations, links, facts


def test_linked_fans_among_a_livestream_crowd_are_no_self_referral_ring():
    """A viral distributor's 120 fans sign up within 40 minutes; ten couples among them share
    their own flats. Registering minutes apart is the crowd's, not a batch of alts."""
    relations, links, facts = distributor_circle(fans=100, fan_spread_min=40, alt_pairs=10,
                                                 alt_spread_min=40)
    assert graphs.self_referral_rings(relations, links, facts, graphs.GraphSettings()) == []


def test_alts_registered_in_a_batch_apart_from_the_circle_make_a_self_referral_ring():
    """Accounts sharing the distributor's payer registered together within ten minutes while
    its other invitees came over weeks: alts made in a batch."""
    relations, links, facts = distributor_circle(fans=100, fan_spread_min=40 * 24 * 60,
                                                 alt_pairs=3, alt_spread_min=10,
                                                 linked_to_distributor=True)
    rings = graphs.self_referral_rings(relations, links, facts, graphs.GraphSettings())
    assert len(rings) == 1 and rings[0].members[0] == "D" and len(rings[0].members) == 7
    assert "registered minutes apart" in rings[0].evidence


def test_households_among_a_viral_distributor_s_fans_are_no_self_referral_ring():
    """A distributor with 2,000 fans over months, 150 couples among them sharing their own
    flats (none shares anything with the distributor), three of them signing up together:
    households in a big crowd, not its owner's alts. Found at 150k accounts, where two such
    distributors made 394- and 384-account rings of honest customers."""
    relations, links, facts = distributor_circle(fans=2000, fan_spread_min=90 * 24 * 60,
                                                 alt_pairs=150, alt_spread_min=90 * 24 * 60)
    batch_start = datetime(2026, 11, 1, 20, 0)
    facts = facts.with_columns(
        pl.when(pl.col("account_id").is_in(["A0", "A2", "A4"]))
        .then(pl.lit(batch_start) + pl.duration(minutes=pl.col("account_id").str.slice(1).cast(pl.Int64)))
        .otherwise(pl.col("registered_at")).alias("registered_at"))
    assert graphs.self_referral_rings(relations, links, facts, graphs.GraphSettings()) == []


def test_a_small_circle_that_is_one_linked_group_refunding_after_settlement_is_a_ring():
    """All three invitees of a distributor share one flat and payer (not the distributor's)
    and refund after their commission settles: the circle is the alts."""
    relations, links, facts = distributor_circle(fans=0, fan_spread_min=0, alt_pairs=1,
                                                 alt_spread_min=60 * 24 * 60, arbitrage=True)
    links = pl.concat([links, pl.DataFrame({"account_a": ["A0"], "account_b": ["A2"], "max_weight": [1.0],
                                            "shared_types": ["payer"]})])
    relations = pl.concat([relations, pl.DataFrame({"distributor_id": ["D"], "account_id": ["A2"]})])
    facts = pl.concat([facts, pl.DataFrame({"account_id": ["A2"], "registered_at": [datetime(2026, 12, 1)],
                                            "arbitrage_orders": [1]})])
    rings = graphs.self_referral_rings(relations, links, facts, graphs.GraphSettings())
    assert [r.members for r in rings] == [("D", "A0", "A1", "A2")]
    assert "refunds after commission settled" in rings[0].evidence


def three_linked_accounts(alt_inviters: list[str], shared: str = "addr_strict,ip",
                          ranges: tuple = ("1596436", "1596436", "1596436")):
    """Distributor D and two accounts A0, A1 on D's flat and broadband (`shared`),
    registered months apart with mobile numbers of the 7-digit `ranges`, no refund after
    settlement; A0 and A1 were invited by `alt_inviters`."""
    relations = pl.DataFrame({"distributor_id": ["D", "D"], "account_id": ["A0", "A1"]})
    links = pl.DataFrame({"account_a": ["A0", "A0", "A1"], "account_b": ["A1", "D", "D"],
                          "max_weight": [0.63] * 3, "shared_types": [shared] * 3})
    facts = pl.DataFrame({"account_id": ["D", "A0", "A1"],
                          "registered_at": [datetime(2025, 1, 5), datetime(2026, 2, 27),
                                            datetime(2026, 7, 10)],
                          "arbitrage_orders": [0, 0, 0], "inviter_id": [None, *alt_inviters],
                          "phone_range": list(ranges)})
    return relations, links, facts


def test_a_chain_of_linked_accounts_paying_its_distributor_level_2_is_a_self_referral_ring():
    """D invited A0 and A0 invited A1, all three on one flat and registered with numbers of
    one range: D earns level 2 commission on A1 through its own accounts. Three such rings
    were missed in 250k-account worlds: too few alts for 'most of the circle', no batch, no
    refund settled yet."""
    relations, links, facts = three_linked_accounts(["D", "A0"])
    rings = graphs.self_referral_rings(relations, links, facts, graphs.GraphSettings())
    assert [r.members for r in rings] == [("D", "A0", "A1")]
    assert "level 2-3 commission" in rings[0].evidence


def test_a_household_whose_members_invite_one_another_is_no_self_referral_ring():
    """D invited her daughter A0, who invited her husband A1: one flat, one broadband line,
    at times one device or payer, parcels sent to one of them (her number on the others'
    orders), each registered with their own number. D earns level 2 on them as on any
    downline; a chain on what a household shares is identity evidence alone."""
    for shared in ("addr_strict,ip", "addr_building,addr_strict,device,ip,ip_net",
                   "addr_building,addr_strict,ip,ip_net,payer",
                   "addr_building,addr_strict,ip,ip_net,phone,phone_range"):
        relations, links, facts = three_linked_accounts(
            ["D", "A0"], shared, ("1391234", "1865550", "1770021"))
        assert graphs.self_referral_rings(relations, links, facts, graphs.GraphSettings()) == []


def test_a_household_each_taking_the_distributor_s_own_link_is_no_self_referral_ring():
    """The same flat, but D invited both relatives itself: a household buying through a
    relative's link, identity evidence alone."""
    relations, links, facts = three_linked_accounts(["D", "D"])
    assert graphs.self_referral_rings(relations, links, facts, graphs.GraphSettings()) == []


def test_a_fan_inviting_her_own_household_builds_no_chain_for_the_distributor():
    """D's only invitee A0 (sharing nothing with D) invited her husband A1: D earns level 2
    on a stranger's family, which built no chain."""
    relations, links, facts = three_linked_accounts(["D", "A0"])
    links = links.filter(pl.col("account_b") != "D")
    assert graphs.self_referral_rings(relations, links, facts, graphs.GraphSettings()) == []


def identity_group(top_share: float, buyer_rate: float, n: int = 6) -> tuple[pl.DataFrame, ...]:
    ids = [f"A{i}" for i in range(n)]
    components = pl.DataFrame({"account_id": ids, "component": [0] * n})
    accounts = pl.DataFrame({
        "account_id": ids, "device_accounts": [n] * n, "payer_accounts": [1] * n,
        "top_product_share": [top_share] * n, "top_product_buyer_rate": [buyer_rate] * n,
        "fast_pay_share": [0.0] * n,
    })
    identifiers = pl.DataFrame({"account_id": ids, "id_type": ["device"] * n, "id_value": ["d1"] * n})
    return components, accounts, identifiers


def test_identity_group_concentrating_on_a_niche_product_is_a_ring():
    rings = graphs.identity_rings(*identity_group(1.0, 0.01), graphs.GraphSettings())
    assert len(rings) == 1 and rings[0].members == tuple(f"A{i}" for i in range(6))


def test_an_identity_ring_names_what_its_accounts_share_in_words():
    """rings.csv is read by risk leads: "1 device, 2 IPs, 6 phones", not the stored type
    names ("1 device, 2 ip, 6 phone")."""
    components, accounts, identifiers = identity_group(1.0, 0.01)
    identifiers = pl.concat([identifiers, pl.DataFrame({
        "account_id": [f"A{i}" for i in range(6)] * 2,
        "id_type": ["ip"] * 6 + ["phone"] * 6,
        "id_value": ["i1", "i2"] * 3 + [f"p{i}" for i in range(6)]})])
    ring, = graphs.identity_rings(components, accounts, identifiers, graphs.GraphSettings())
    assert ring.evidence.startswith("6 accounts on 1 device, 2 IPs, 6 phones; 100% of their orders")
    assert ring.evidence_zh.startswith("6 个账号共用 1 个设备、2 个IP、6 个手机号")


def test_concentration_in_a_one_product_shop_is_no_behaviour_in_common():
    # every buyer of a shop that sells one thing buys "the same product"
    assert graphs.identity_rings(*identity_group(1.0, 1.0), graphs.GraphSettings()) == []
    assert graphs.identity_rings(*identity_group(1.0, 0.5), graphs.GraphSettings()) == []


def test_fraudar_peels_a_planted_dense_block_out_of_random_shopping():
    import numpy as np

    rng = np.random.default_rng(0)
    honest_rows = rng.integers(0, 500, 2000)
    honest_cols = rng.integers(0, 300, 2000)
    farm_rows = np.repeat(np.arange(500, 520), 6)  # 20 accounts ...
    farm_cols = np.tile(np.arange(300, 306), 20)  # ... all on the same 6 product-days
    rows = np.concatenate([honest_rows, farm_rows])
    cols = np.concatenate([honest_cols, farm_cols])
    block_rows, block_cols, density = graphs.fraudar_peel(rows, cols, 520, 306)
    assert set(block_rows.tolist()) == set(range(500, 520))
    assert set(block_cols.tolist()) == set(range(300, 306))
    # peeled in vectorised rounds (as the bulk of a platform graph is): the same block, whether
    # rounds take only near-cheapest nodes all the way or a 5 % share until 100 nodes are left
    for batched in ({"exact_below": 0, "round_share": 0.0}, {"exact_below": 100, "round_share": 0.05}):
        batched_rows, batched_cols, _ = graphs.fraudar_peel(rows, cols, 520, 306, **batched)
        assert set(batched_rows.tolist()) == set(range(500, 520)), batched
        assert set(batched_cols.tolist()) == set(range(300, 306)), batched
    degree = np.bincount(cols, minlength=306)
    whole = (1.0 / np.log(degree[cols] + 5.0)).sum() / (520 + 306)
    assert density > 1.25 * whole


def test_peeling_only_the_dense_core_finds_the_same_block():
    import numpy as np

    rng = np.random.default_rng(1)
    rows = np.concatenate([rng.integers(0, 3000, 5000), np.repeat(np.arange(3000, 3030), 8)])
    cols = np.concatenate([rng.integers(0, 2000, 5000), np.tile(np.arange(2000, 2008), 30)])
    weight = graphs.fraudar_weights(cols, 2008)
    whole = weight.sum() / (3030 + 2008)
    core = graphs.weighted_core(rows, cols, weight, 3030, 2008, 1.25 * whole)
    assert core.sum() < 0.8 * len(rows)  # light shoppers fall out of the core
    full = graphs.fraudar_peel(rows, cols, 3030, 2008, weight)
    cored = graphs.fraudar_peel(rows[core], cols[core], 3030, 2008, weight[core])
    assert set(cored[0].tolist()) == set(full[0].tolist()) == set(range(3000, 3030))
    assert set(cored[1].tolist()) == set(full[1].tolist()) == set(range(2000, 2008))
    assert cored[2] == pytest.approx(full[2])


def buyer_cells(orders: pl.DataFrame) -> graphs.BuyerCells:
    """The peel's numbered graph of these orders, made as the scan makes it."""
    con = duckdb.connect()
    con.execute("create schema intermediate")
    con.register("orders_frame", orders.to_arrow())
    con.execute("create table intermediate.order_keys as select * from orders_frame")
    return graphs.BuyerCells.from_warehouse(con)


def test_dense_blocks_are_never_a_crowd_or_most_of_the_graph():
    import datetime as dt

    created = [dt.datetime(2026, 10, 1, 12) + dt.timedelta(days=d % 20) for d in range(4000)]
    orders = pl.DataFrame({  # everybody buys everything a little: no block passes the gates
        "buyer_id": [f"U{i % 400}" for i in range(4000)],
        "product_id": [f"P{(i * 7) % 50}" for i in range(4000)],
        "shop_id": ["S1"] * 4000,
        "created_at": created,
    })
    assert graphs.dense_block_rings(buyer_cells(orders), graphs.GraphSettings()) == []


def test_a_brushing_farm_is_peeled_out_of_a_shop_as_one_dense_block():
    import datetime as dt

    rng = np.random.default_rng(3)
    start = dt.datetime(2026, 10, 1, 9)
    honest = pl.DataFrame({  # 3000 shoppers, two or three orders each, over 80 products and 30 days
        "buyer_id": [f"U{i % 3000:04d}" for i in range(7500)],
        "product_id": [f"P{p:02d}" for p in rng.integers(0, 80, 7500)],
        "shop_id": "S1",
        "created_at": [start + dt.timedelta(days=int(d)) for d in rng.integers(0, 30, 7500)],
    })
    farm = pl.DataFrame({  # 12 accounts all buying one obscure product on each of 6 days
        "buyer_id": [f"F{a:02d}" for a in range(12) for _ in range(6)],
        "product_id": "P99",
        "shop_id": "S1",
        "created_at": [start + dt.timedelta(days=d, hours=a) for a in range(12) for d in range(6)],
    })
    rings = graphs.dense_block_rings(buyer_cells(pl.concat([honest, farm])), graphs.GraphSettings())
    assert len(rings) == 1
    assert rings[0].members == tuple(f"F{a:02d}" for a in range(12))
    assert rings[0].kind == "brushing" and rings[0].products == ("P99",) and rings[0].shops == ("S1",)
    assert "6 day(s)" in rings[0].evidence
    assert "6 天" in rings[0].evidence_zh


def test_invite_loops_appear_once_one_persons_accounts_are_contracted():
    components = pl.DataFrame({"account_id": ["A1", "A2", "B1", "B2"], "component": [0, 0, 1, 1]})
    invites = pl.DataFrame({
        "inviter_id": ["A1", "B1", "C", "D"],
        "account_id": ["A2", "C", "B2", "E"],  # A1 invites A2 (same person); B1 -> C -> B2 loops
    })
    loops = graphs.invite_loops(components, invites)
    found = dict(zip(loops["account_id"], loops["invite_loop"], strict=True))
    assert found["A1"] == found["A2"] == "invites own account"
    assert {"B1", "B2", "C"} <= set(found)
    assert "D" not in found and "E" not in found


def test_commission_flowing_to_the_buyers_own_other_account_is_found():
    components = pl.DataFrame({"account_id": ["B", "B-alt", "H"], "component": [3, 3, 4]})
    commissions = pl.DataFrame({
        "order_id": ["O1", "O1", "O2"], "buyer_id": ["B", "B", "H"],
        "beneficiary_id": ["X", "B-alt", "Y"], "level": [1, 2, 1],
    })
    found = graphs.commission_to_self(components, commissions)
    assert found.to_dicts() == [{"order_id": "O1", "self_commission_level": 2}]


def _heavy_cancellers(rows: list[tuple[str, str, float, bool]]) -> pl.DataFrame:
    start = datetime(2026, 10, 1)
    return pl.DataFrame(
        [(a, s, start + timedelta(hours=h), undone) for a, s, h, undone in rows],
        schema={"account_id": pl.String, "shop_id": pl.String, "created_at": pl.Datetime("us"),
                "is_cancel_or_refund": pl.Boolean}, orient="row")


def test_a_flood_is_a_burst_of_undone_orders_not_a_month_of_cancellers_at_one_shop():
    settings = graphs.GraphSettings()
    # a competitor's three accounts: 15 orders within 5 hours, all cancelled; a regular
    # customer who cancels most of what she orders there, on other days
    flood = [(f"C{i % 3}", "S1", 100 + i / 3, True) for i in range(15)]
    regular = [("H1", "S1", 10, True), ("H1", "S1", 300, True), ("H1", "S1", 500, False),
               ("H1", "S1", 102, True)]  # one of hers falls inside the flood's hours
    rings = graphs.malicious_rings(_heavy_cancellers(flood + regular), settings)
    assert [(r.members, r.shops) for r in rings] == [(("C0", "C1", "C2"), ("S1",))]
    assert "3 accounts placed 15 orders on shop S1, 15 of them within 5 h" in rings[0].evidence
    # the same cancellers spread over three weeks: heavy cancellers, but no flood
    spread = [(f"C{i % 3}", "S1", 36.0 * i, True) for i in range(15)]
    assert graphs.malicious_rings(_heavy_cancellers(spread + regular), settings) == []
    # two floods on one shop, a week apart, are two rings
    second = [(f"D{i % 2}", "S1", 400 + i / 2, True) for i in range(10)]
    rings = graphs.malicious_rings(_heavy_cancellers(flood + second), settings)
    assert sorted(r.members for r in rings) == [("C0", "C1", "C2"), ("D0", "D1")]


def test_a_customer_whose_occasional_cancellations_fall_in_a_flood_is_not_one_of_it():
    settings = graphs.GraphSettings()
    # three competitor accounts: 12 orders within 4 hours, all cancelled, and they come back
    # to the shop a fortnight later for 12 more
    flood = [(f"C{i % 3}", "S1", 100 + i / 3, True) for i in range(12)]
    again = [(f"C{i % 3}", "S1", 440 + i / 3, True) for i in range(12)]
    # a regular who cancels three of her four orders there over three weeks: two of those
    # land within the flood's 72 hours (one as it starts, one two days later), two thirds of
    # her cancellations
    regular = [("H1", "S1", 100.1, True), ("H1", "S1", 150, True), ("H1", "S1", 420, True),
               ("H1", "S1", 600, False)]
    rings = graphs.malicious_rings(_heavy_cancellers(flood + again + regular), settings)
    assert sorted(r.members for r in rings) == [("C0", "C1", "C2"), ("C0", "C1", "C2")]
    assert all("H1" not in r.members for r in rings)


def test_two_floods_back_to_back_on_one_shop_keep_their_own_accounts():
    settings = graphs.GraphSettings()
    # three accounts cancel 9 orders over the first day; four others 20 over the next two.
    # The fullest 72 hours hold the second flood and the first one's last six orders
    first = [(f"A{i}", "S1", h + i, True) for i in range(3) for h in (0, 10, 25)]
    second = [(f"B{i % 4}", "S1", 46 + 34 * i / 19, True) for i in range(20)]
    rings = graphs.malicious_rings(_heavy_cancellers(first + second), settings)
    assert sorted(r.members for r in rings) == [("A0", "A1", "A2"), ("B0", "B1", "B2", "B3")]


def test_a_flood_is_as_long_as_its_orders_and_two_floods_days_apart_are_two():
    settings = graphs.GraphSettings()
    # three accounts cancel 18 orders in under three hours; a day later two others cancel 12
    # in one hour: both fit in one 72-hour window, but they are two competitors' floods
    first = [(f"C{i % 3}", "S1", 100 + i / 6, True) for i in range(18)]
    second = [(f"D{i % 2}", "S1", 124 + i / 12, True) for i in range(12)]
    # a regular's cancellations two days later are no part of either burst's hours
    regular = [("H1", "S1", 150, True), ("H1", "S1", 160, True)]
    rings = graphs.malicious_rings(_heavy_cancellers(first + second + regular), settings)
    assert sorted(r.members for r in rings) == [("C0", "C1", "C2"), ("D0", "D1")]
    evidence = {r.members: r.evidence for r in rings}
    assert "18 of them within 3 h" in evidence["C0", "C1", "C2"]
    assert "12 of them within 55 minutes" in evidence["D0", "D1"]


def test_a_busy_honest_day_at_a_shop_hides_no_flood_elsewhere_in_the_month():
    settings = graphs.GraphSettings()
    # a sale day: 30 customers each cancel two orders within twelve hours (and one more later
    # in the month): the shop's busiest stretch of cancellations, but nobody's burst
    sale = [(f"H{i}", "S1", 240 + i * 0.4 + j * 0.2, True) for i in range(30) for j in range(2)]
    later = [(f"H{i}", "S1", 400 + i * 10, True) for i in range(30)]
    # a fortnight later two accounts cancel ten orders within two hours
    flood = [(f"C{i % 2}", "S1", 560 + i / 5, True) for i in range(10)]
    rings = graphs.malicious_rings(_heavy_cancellers(sale + later + flood), settings)
    assert [r.members for r in rings] == [("C0", "C1")]


def test_alts_refunding_after_their_commission_settles_are_no_flood():
    settings = graphs.GraphSettings()
    # a distributor's three alts buy 12 orders through its link over a few hours and refund
    # each soon after the commission settles (佣金套利): self-referral, not a competitor
    alts = [(f"A{i % 3}", "S1", 100 + i / 3, True) for i in range(12)]
    orders = _heavy_cancellers(alts)
    assert [r.members for r in graphs.malicious_rings(orders, settings)] == [("A0", "A1", "A2")]
    arbitrage = orders.with_columns(is_arbitrage=pl.lit(True))
    assert graphs.malicious_rings(arbitrage, settings) == []
    # a competitor's flood on the same shop beside them is still one
    flood = _heavy_cancellers([(f"C{i % 2}", "S1", 103 + i / 4, True) for i in range(10)])
    mixed = pl.concat([arbitrage, flood.with_columns(is_arbitrage=pl.lit(False))])
    assert [r.members for r in graphs.malicious_rings(mixed, settings)] == [("C0", "C1")]


def test_a_large_shops_lost_parcels_are_no_fake_shipping_but_a_small_shops_are():
    """Couriers lose a few parcels in a thousand: five undelivered of 5,000 shipped is a busy
    honest shop; five of 40 is a shop marking orders shipped that it never sent."""
    def undelivered(shop: str, n: int) -> pl.DataFrame:
        return pl.DataFrame({
            "order_id": [f"{shop}-{i}" for i in range(n)], "shop_id": [shop] * n,
            "waybill_suspect": [True] * n, "waybill_reused": [False] * n,
            "waybill_malformed": [False] * n, "long_undelivered": [True] * n})

    waybills = pl.concat([undelivered("BIG", 5), undelivered("SMALL", 5)])
    rings = graphs.fake_shipping_rings(waybills, {"BIG": 5000, "SMALL": 40}, graphs.GraphSettings())
    assert [r.members for r in rings] == [("SMALL",)]
    assert "of 40 shipped orders" in rings[0].evidence and "5 were never delivered" in rings[0].evidence


def test_a_distributors_circle_reaches_the_alts_its_alts_invited():
    """Alts invited by alts earn the distributor level 2 and 3 commission: they are in its
    circle down to the levels the programme pays, and no deeper."""
    con = duckdb.connect()
    con.execute("create schema staging; create schema intermediate")
    con.execute("create table staging.accounts as select * from (values "
                "('D', null), ('A1', 'D'), ('A2', 'A1'), ('A3', 'A2'), ('A4', 'A3'), ('B', 'B')) "
                "t(account_id, inviter_id)")
    con.execute("create table intermediate.order_keys as select * from (values "
                "('O1', 'C1', 'D'), ('O2', 'C2', null)) t(order_id, buyer_id, referrer_id)")
    circle = graphs.referral_relations(con, levels=3).filter(pl.col("distributor_id") == "D")
    assert sorted(circle["account_id"]) == ["A1", "A2", "A3", "C1"]
    assert sorted(graphs.referral_relations(con, levels=1)
                  .filter(pl.col("distributor_id") == "D")["account_id"]) == ["A1", "C1"]
