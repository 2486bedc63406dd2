-- grain: one row per order_id, only shipped orders that fail a waybill check (reused,
-- malformed, long undelivered) or sit in a sequential run; an order without a row passes.
-- Only the few failing orders are written: all 8M shipped orders of a 10M-order window
-- were ~25 s of writing for rows that said "nothing wrong".
with tracking as (
    select * from intermediate.tracking_checks
),
long_undelivered as (
    -- still in transit long after shipping, or refunded after a wait no real parcel takes
    select order_id from intermediate.order_keys
    where (shipped_not_delivered and date_diff('hour', shipped_at, $as_of) / 24.0 > $undelivered_days)
       or refunded_undelivered_days >= $undelivered_refund_days
),
judge as (
    select t.order_id, t.shop_id, t.buyer_id, t.tracking_no, t.waybill_orders, t.waybill_buyers,
        t.waybill_shape_share, t.waybill_sequential,
        (t.waybill_buyers >= 2 and t.waybill_destinations >= 2) as waybill_reused,
        (t.carrier_count >= $min_carrier_orders
         and (t.waybill_shape_share < $rare_shape_share
              -- one shop's own shape: a made-up number in one consistent format
              or (t.shape_shops = 1 and t.carrier_shops >= $min_carrier_shops
                  and t.waybill_shape_share < $one_shop_shape_share)))
            as waybill_malformed,
        (u.order_id is not null) as long_undelivered
    from tracking t
    left join long_undelivered u using (order_id)
),
flag as (
    select *, (waybill_reused or waybill_malformed or long_undelivered) as waybill_suspect
    from judge
)
select * from flag
where waybill_suspect or waybill_sequential
