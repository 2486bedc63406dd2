-- grain: one row per order_id of an earlier night's export that reaches the flag threshold
-- for the first time tonight (the evidence against it grew: a ring formed around its buyer,
-- more orders of its pattern arrived). Support's CSV lists these after being silent about
-- them on their own night; ops.published_flags names every order already published flagged.
select s.order_id, s.shop_id, s.buyer_id, s.product_id, s.referrer_id, s.created_at,
    s.amount, s.status, s.score, s.risk_level, s.reason_codes, s.ring_id, s.ring_kind,
    s.rule_points, s.forest_points, s.supervised_points, s.suppressed_by, $run_id as run_id
from intermediate.order_scores s
where not s.is_tonight
  and s.risk_level <> 'low'
  and s.order_id not in (select order_id from ops.published_flags where night <> $night)
