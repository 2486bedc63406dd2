-- grain: one row per order_id of tonight's export (every order that passed validation,
-- scored once against the lookback window)
-- (the scorer carries product_id, referrer_id and status over from order_features, and
-- marks tonight's orders: is_tonight)
with scores as (
    select * from intermediate.order_scores
),
assemble as (
    select s.order_id, s.shop_id, s.buyer_id, s.product_id, s.referrer_id, s.created_at,
        s.amount, s.status, s.score, s.risk_level, s.reason_codes, s.ring_id, s.ring_kind,
        s.rule_points, s.forest_points, s.supervised_points, s.suppressed_by, $run_id as run_id
    from scores s
    where s.is_tonight
)
select * from assemble
