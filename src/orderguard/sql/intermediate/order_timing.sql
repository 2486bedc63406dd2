-- grain: one row per order_id
-- Timing and price facts of each order (pay, ship, deliver, review; price against list).
with order_keys as (
    select * from intermediate.order_keys
),
accounts as (
    select account_id, registered_at from staging.accounts
),
products as (
    select product_id, price, cost, coalesce(is_virtual, false) as is_virtual
    from staging.products
),
measure as (
    select
        o.order_id,
        date_diff('second', o.created_at, o.paid_at) as pay_delay_s,
        date_diff('minute', o.shipped_at, o.delivered_at) / 60.0 as ship_to_deliver_h,
        date_diff('minute', o.paid_at, o.shipped_at) / 60.0 as pay_to_ship_h,
        date_diff('minute', o.delivered_at, o.reviewed_at) as review_delay_min,
        o.review_rating,
        date_diff('minute', a.registered_at, o.created_at) / 1440.0 as account_age_days,
        date_diff('second', a.registered_at, o.created_at) as account_age_s,
        hour(o.created_at) as order_hour,
        coalesce(p.is_virtual, false) as is_virtual,
        p.price as list_price,
        p.cost as unit_cost,
        o.amount / nullif(o.quantity, 0) as unit_paid,
        (p.price is not null and o.amount = p.price * o.quantity) as at_exact_list_price,
        o.is_cancel_or_refund,
        (o.shipped_at is not null and o.delivered_at is null
            and o.status not in ('cancelled', 'refunded')
            and not coalesce(p.is_virtual, false)) as shipped_not_delivered,
        date_diff('hour', o.shipped_at, $as_of) / 24.0 as days_since_shipped
    from order_keys o
    left join accounts a on a.account_id = o.buyer_id
    left join products p on p.product_id = o.product_id
)
select * from measure
