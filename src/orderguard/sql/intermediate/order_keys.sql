-- grain: one row per order_id
-- Every order with its normalised identifiers and its timing and price facts (pay, ship,
-- deliver, review; price against list), the base for features. The facts live here rather
-- than in a table of their own: three readers joined that table back on order_id.
-- Only keys a model reads are copied here; the rest of a lookup's columns (the masked phone
-- key, the compound key, province, city, district) stay in intermediate.norm_address and
-- norm_phone, joined on the raw text (staging.orders.address, receiver_phone) by whoever
-- wants them: copying them was ~0.7 GB of the 4.7 GB written per 10M orders. Likewise
-- the times only the delays below need (paid, delivered, reviewed) and refund_amount stay
-- in staging.orders.
-- A row depends only on its order, buyer and product rows and the lookups, never on the
-- scan's date (days since shipping is computed by its readers), so rows are kept across
-- nights and only orders new or changed since are keyed again.
with orders as (
    -- the identifier texts lowered once (og_token_of's input), not once per use
    select *, lower(trim(device_id)) as device_text, lower(trim(payment_account)) as payer_text,
           lower(trim(receiver_name)) as receiver_text
    from order_keys_input  -- temp view made by features.build_order_keys()
),
accounts as (
    select account_id, registered_at from staging.accounts
),
products as (
    select product_id, price, cost, coalesce(is_virtual, false) as is_virtual
    from staging.products
),
addresses as (
    select * from intermediate.norm_address
),
phones as (
    select * from intermediate.norm_phone
),
ips as (
    select * from intermediate.norm_ip
),
join_keys as (
    select
        o.order_id, o.shop_id, o.buyer_id, o.product_id, o.referrer_id,
        o.quantity, o.amount, o.status, o.carrier, o.tracking_no,
        o.created_at, o.shipped_at, o.refunded_at,
        o.review_rating,
        o.status in ('cancelled', 'refunded') or o.refunded_at is not null as is_cancel_or_refund,
        og_token_of(o.device_text) as device_key,
        og_token_of(o.payer_text) as payer_key,
        i.ip_norm as ip_key,
        i.ip_network as ip_net_key,
        p.phone_norm as phone_key,
        p.phone_prefix7,
        coalesce(p.is_virtual_operator, false) as is_virtual_phone,
        case when p.phone_norm is not null and og_token_of(o.receiver_text) is not null
             then og_token_of(o.receiver_text) || '|' || p.phone_norm end as receiver_key,
        a.address_strict_key,
        a.address_building_key,
        coalesce(a.is_hub, false) as address_is_hub,
        date_diff('second', o.created_at, o.paid_at) as pay_delay_s,
        date_diff('minute', o.shipped_at, o.delivered_at) / 60.0 as ship_to_deliver_h,
        date_diff('minute', o.paid_at, o.shipped_at) / 60.0 as pay_to_ship_h,
        date_diff('minute', o.delivered_at, o.reviewed_at) as review_delay_min,
        date_diff('minute', r.registered_at, o.created_at) / 1440.0 as account_age_days,
        date_diff('second', r.registered_at, o.created_at) as account_age_s,
        hour(o.created_at) as order_hour,
        coalesce(pr.is_virtual, false) as is_virtual,
        pr.price as list_price,
        pr.cost as unit_cost,
        o.amount / nullif(o.quantity, 0) as unit_paid,
        (pr.price is not null and o.amount = pr.price * o.quantity) as at_exact_list_price,
        (o.shipped_at is not null and o.delivered_at is null
            and o.status not in ('cancelled', 'refunded')
            and not coalesce(pr.is_virtual, false)) as shipped_not_delivered,
        -- a parcel that never arrived and was refunded instead: the days the buyer waited
        case when o.shipped_at is not null and o.delivered_at is null and o.refunded_at is not null
                  and not coalesce(pr.is_virtual, false)
             then date_diff('minute', o.shipped_at, o.refunded_at) / 1440.0 end
            as refunded_undelivered_days
    from orders o
    left join addresses a on a.address = o.address
    left join phones p on p.phone_raw = o.receiver_phone
    left join ips i on i.ip_raw = o.ip
    left join accounts r on r.account_id = o.buyer_id
    left join products pr on pr.product_id = o.product_id
)
select * from join_keys
