-- grain: one row per order_id
-- Every order with its normalised identifiers and timing facts, the base for features.
with orders as (
    select * from staging.orders
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
        o.quantity, o.amount, o.refund_amount, o.status, o.carrier, o.tracking_no,
        o.created_at, o.paid_at, o.shipped_at, o.delivered_at, o.refunded_at,
        o.review_rating, o.reviewed_at,
        o.status in ('cancelled', 'refunded') or o.refunded_at is not null as is_cancel_or_refund,
        og_token(o.device_id) as device_key,
        og_token(o.payment_account) as payer_key,
        i.ip_norm as ip_key,
        i.ip_network as ip_net_key,
        p.phone_norm as phone_key,
        p.phone_masked_key,
        p.phone_prefix7,
        coalesce(p.is_virtual_operator, false) as is_virtual_phone,
        case when p.phone_norm is not null and og_token(o.receiver_name) is not null
             then og_token(o.receiver_name) || '|' || p.phone_norm end as receiver_key,
        a.address_strict_key,
        a.address_building_key,
        a.address_compound_key,
        coalesce(a.is_hub, false) as address_is_hub,
        a.province, a.city, a.district
    from orders o
    left join addresses a on a.address = o.address
    left join phones p on p.phone_raw = o.receiver_phone
    left join ips i on i.ip_raw = o.ip
)
select * from join_keys
