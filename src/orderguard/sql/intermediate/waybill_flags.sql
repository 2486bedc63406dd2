-- grain: one row per order_id (orders with a tracking number)
-- Which waybill checks each shipped order fails.
with tracking as (
    select * from intermediate.tracking_checks
),
timing as (
    select order_id, shipped_not_delivered, days_since_shipped from intermediate.order_timing
),
order_keys as (
    select order_id, shop_id, buyer_id from intermediate.order_keys
),
judge as (
    select k.order_id, k.shop_id, k.buyer_id, t.tracking_no, t.waybill_orders, t.waybill_buyers,
        t.waybill_shape_share, t.waybill_sequential,
        (t.waybill_buyers >= 2 and t.waybill_destinations >= 2) as waybill_reused,
        (t.waybill_shape_share < $rare_shape_share and t.carrier_count >= $min_carrier_orders)
            as waybill_malformed,
        coalesce(tm.shipped_not_delivered and tm.days_since_shipped > $undelivered_days, false)
            as long_undelivered
    from tracking t
    join order_keys k using (order_id)
    left join timing tm using (order_id)
),
flag as (
    select *, (waybill_reused or waybill_malformed or long_undelivered) as waybill_suspect
    from judge
)
select * from flag
