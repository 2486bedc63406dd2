import polars as pl

from orderguard.detect import score_features
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
