-- grain: one row per order_id
-- The scorer's input: every per-order fact and the buyer's referral and per-shop context.
-- The buyer's account features (intermediate.account_features, one row per account) are not
-- copied onto each order here: scoring_stream.sql joins them beside the forest scores, on
-- the same key. Copying 20 account columns onto 10M orders cost more to write (16-19 s
-- against 13.6 s) than the stream's wider join adds (~1 s).
with usual_quantity as (  -- what one order of the product usually holds
    select product_id, quantile_disc(quantity, 0.5) as usual_quantity
    from intermediate.order_keys group by 1
),
-- order_keys is read twice; DuckDB would copy a CTE read twice, and two scans cost less.
-- A bulk order: at least $bulk_min_quantity units and $bulk_quantity_ratio times the
-- product's usual quantity.
order_keys as not materialized (
    select k.*, k.quantity >= greatest($bulk_min_quantity, $bulk_quantity_ratio * u.usual_quantity)
               as is_bulk_order
    from intermediate.order_keys k left join usual_quantity u using (product_id)
),
waybills as (select * from intermediate.waybill_flags),
bursts as (select order_id, window_orders, burst_ratio from intermediate.product_bursts),
referral as (select * exclude (buyer_id, referrer_id) from intermediate.referral_checks),
tree as (select account_id, referral_depth, downline_size from intermediate.referral_tree),
buyer_shop as (
    select buyer_id, shop_id, count(*) as orders_at_shop,
           avg(is_cancel_or_refund::int) as cancel_share_at_shop,
           count(*) filter (where is_bulk_order) as bulk_orders_at_shop
    from order_keys group by 1, 2
),
assemble as (
    select
        o.order_id, o.shop_id, o.buyer_id, o.product_id, o.referrer_id, o.created_at,
        o.amount, o.quantity, o.status, o.address_is_hub, o.is_virtual_phone,
        o.pay_delay_s, o.ship_to_deliver_h, o.pay_to_ship_h, o.review_delay_min,
        o.review_rating, o.account_age_days, o.account_age_s, o.order_hour, o.is_virtual,
        o.list_price, o.unit_cost, o.unit_paid, o.at_exact_list_price, o.is_cancel_or_refund,
        o.shipped_not_delivered,
        date_diff('hour', o.shipped_at, $as_of) / 24.0 as days_since_shipped,
        coalesce(w.waybill_reused, false) as waybill_reused,
        coalesce(w.waybill_malformed, false) as waybill_malformed,
        coalesce(w.long_undelivered, false) as long_undelivered,
        coalesce(w.waybill_sequential, false) as waybill_sequential,
        b.window_orders, b.burst_ratio,
        r.* exclude (order_id),
        coalesce(tr.referral_depth, 0) as buyer_referral_depth,
        coalesce(tr.downline_size, 0) as buyer_downline_size,
        bs.orders_at_shop, bs.cancel_share_at_shop, bs.bulk_orders_at_shop, o.is_bulk_order
    from order_keys o
    left join waybills w using (order_id)
    left join bursts b using (order_id)
    left join referral r using (order_id)
    left join tree tr on tr.account_id = o.buyer_id
    left join buyer_shop bs on bs.buyer_id = o.buyer_id and bs.shop_id = o.shop_id
)
select * from assemble
