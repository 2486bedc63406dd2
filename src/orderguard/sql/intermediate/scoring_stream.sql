-- grain: one row per order of the window (intermediate.order_features)
-- What the scorer reads, batch by batch: each order's features, whether it is one of
-- tonight's orders, its ring flags, its buyer's account features (intermediate.
-- account_features) and forest anomaly and rank (intermediate.account_scores, which the
-- scorer writes before it reads this) and the
-- level of any commission paid to the buyer's own identity. Not a table:
-- detect.run_scoring_stage streams it. These joins ran in Polars once per 500k-order batch,
-- building the 2M accounts' hash table again for every batch (~12 s at 10M orders).
-- One flag per graphs.RING_KINDS (detect checks the names). The orders come from the temp
-- view scoring_stream_input that detect makes: the whole window, or only the orders with a
-- verdict (joining all 10M first and then keeping those took 4-6 s instead of ~1).
with ring_flags as (
    select order_id,
           bool_or(kind = 'brushing') as ring_brushing,
           bool_or(kind = 'self_referral') as ring_self_referral,
           bool_or(kind = 'malicious') as ring_malicious,
           bool_or(kind = 'fake_shipping') as ring_fake_shipping,
           bool_or(kind = 'deep_chain') as ring_deep_chain
    from intermediate.ring_orders
    group by order_id
),
assemble as (
    select f.*,
           f.order_id in (select order_id from ops.tonight_orders) as is_tonight,
           coalesce(r.ring_brushing, false) as ring_brushing,
           coalesce(r.ring_self_referral, false) as ring_self_referral,
           coalesce(r.ring_malicious, false) as ring_malicious,
           coalesce(r.ring_fake_shipping, false) as ring_fake_shipping,
           coalesce(r.ring_deep_chain, false) as ring_deep_chain,
           b.n_orders as buyer_orders, b.n_shops as buyer_shops, b.n_products as buyer_products,
           b.cancel_refund_share as buyer_cancel_share,
           b.top_product_share as buyer_top_product_share,
           b.fast_pay_share as buyer_fast_pay_share,
           b.fast_delivery_share as buyer_fast_delivery_share,
           b.instant_5star_share as buyer_instant_5star_share,
           b.exact_price_share as buyer_exact_price_share,
           b.device_accounts, b.payer_accounts, b.phone_accounts, b.ip_accounts, b.address_accounts,
           b.shared_rarity_sum, b.siblings_within_10min, b.instant_siblings,
           a.forest_anomaly, a.forest_rank,
           c.* exclude (order_id)
    from scoring_stream_input f  -- intermediate.order_features, or the labelled part of it
    left join ring_flags r on r.order_id = f.order_id
    left join intermediate.account_features b on b.account_id = f.buyer_id
    left join intermediate.account_scores a on a.account_id = f.buyer_id
    left join intermediate.self_commission c on c.order_id = f.order_id
)
select * from assemble
