-- grain: one row per order_id of tonight's export (every order that passed validation,
-- scored once against the lookback window)
with scores as (
    select * from intermediate.order_scores
),
orders as (
    select order_id, product_id, referrer_id, status from staging.orders
),
assemble as (
    select s.order_id, s.shop_id, s.buyer_id, o.product_id, o.referrer_id, s.created_at,
        s.amount, o.status, s.score, s.risk_level, s.reason_codes, s.ring_id, s.ring_kind,
        s.rule_points, s.forest_points, s.supervised_points, s.suppressed_by, $run_id as run_id
    from scores s join orders o using (order_id)
    where s.order_id in (select order_id from ops.tonight_orders)
)
select * from assemble
