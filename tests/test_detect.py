from datetime import datetime

import duckdb
import polars as pl

from orderguard import graphs
from orderguard.detect import _ring_orders, score_features
from orderguard.rules import load_rules


def test_the_forest_tie_break_orders_orders_but_names_no_reason_below_its_top_share():
    features = pl.DataFrame({
        "order_id": ["O1", "O2", "O3"], "shop_id": ["S1"] * 3, "buyer_id": ["B1", "B2", "B3"],
        "created_at": [None] * 3, "amount": [1.0] * 3, "buyer_orders": [30] * 3,
        "forest_rank": [0.1, 0.6, 0.995], "supervised_points": [0.0] * 3,
    })
    scored = score_features(features, load_rules())
    assert scored["score"].to_list() == sorted(scored["score"].to_list())  # more anomalous, higher
    assert scored["score"][0] < scored["score"][1]
    assert [codes.to_list() for codes in scored["reason_codes"]] == [[], [], ["FOREST_ANOMALY"]]


def _ring_orders_of(orders: list[tuple], ring: graphs.Ring) -> list[str]:
    con = duckdb.connect()
    con.execute("create schema intermediate")
    con.execute("create table intermediate.order_keys (order_id varchar, buyer_id varchar, "
                "shop_id varchar, product_id varchar, created_at timestamp)")
    con.executemany("insert into intermediate.order_keys values (?, ?, ?, ?, ?)", orders)
    ring.ring_id = graphs.ring_id_for(ring.kind, ring.members)
    return sorted(_ring_orders(con, [ring])["order_id"])


def _co_buying_ring(members: list[str]) -> graphs.Ring:
    return graphs.Ring(kind="brushing", members=tuple(members), strength=30.0,
                       evidence="co-buying", shops=("S1",), products=("P1",))


def test_a_group_purchase_ring_owns_the_group_purchase_not_the_colleagues_other_shopping():
    # five colleagues each buy P1 once on one afternoon (拼单), and shop elsewhere as usual
    orders = [(f"G{i}", f"U{i}", "S1", "P1", datetime(2026, 10, 20, 14, i)) for i in range(5)]
    orders += [(f"X{i}", f"U{i}", "S9", "P9", datetime(2026, 10, 3 + i, 9)) for i in range(5)]
    assert _ring_orders_of(orders, _co_buying_ring([f"U{i}" for i in range(5)])) == [
        f"G{i}" for i in range(5)]


def test_a_farm_that_comes_back_for_its_target_keeps_its_camouflage_orders():
    # the same accounts buy P1 again a week later: a farm, whose other orders are its cover
    orders = [(f"G{i}", f"U{i}", "S1", "P1", datetime(2026, 10, 20, 14, i)) for i in range(5)]
    orders += [(f"R{i}", f"U{i}", "S1", "P1", datetime(2026, 10, 27, 14, i)) for i in range(5)]
    orders += [(f"X{i}", f"U{i}", "S9", "P9", datetime(2026, 10, 3 + i, 9)) for i in range(5)]
    assert _ring_orders_of(orders, _co_buying_ring([f"U{i}" for i in range(5)])) == sorted(
        o[0] for o in orders)
