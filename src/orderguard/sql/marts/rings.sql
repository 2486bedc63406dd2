-- grain: one row per ring_id
-- Each detected ring with the orders, money and commission it puts at stake.
with rings as (
    select * from intermediate.rings
),
ring_orders as (
    select * from intermediate.ring_orders
),
orders as (
    select order_id, amount, shop_id, product_id from staging.orders
),
commissions as (  -- reversed commission is no longer at stake
    select order_id, sum(amount) filter (where status <> 'reversed') as commission,
           sum(amount) filter (where status = 'pending') as commission_pending
    from staging.commissions group by 1
),
money as (
    select ro.ring_id, count(*) as order_count, coalesce(sum(o.amount), 0) as gmv,
           -- where the ring's orders were: the detectors of account rings (self-referral,
           -- chains, shared identities) name no shop of their own
           string_agg(distinct o.shop_id, ';' order by o.shop_id) as order_shops,
           string_agg(distinct o.product_id, ';' order by o.product_id) as order_products,
           coalesce(sum(c.commission), 0) as commission_at_stake,
           coalesce(sum(c.commission_pending), 0) as commission_pending
    from ring_orders ro
    join orders o using (order_id)
    left join commissions c using (order_id)
    group by 1
),
assemble as (
    select r.ring_id, r.kind, r.size, r.members,
        coalesce(m.order_count, 0) as order_count, coalesce(m.gmv, 0) as gmv,
        coalesce(m.commission_at_stake, 0) as commission_at_stake,
        coalesce(m.commission_pending, 0) as commission_pending,
        r.evidence, r.strength, r.density,
        coalesce(nullif(r.shops, ''), m.order_shops, '') as shops,
        coalesce(nullif(r.products, ''), m.order_products, '') as products, $run_id as run_id,
        -- last: columns readers already know keep their places. A ring whose detector wrote
        -- no Chinese keeps its English here, so no reader needs a fallback of its own
        coalesce(r.evidence_zh, r.evidence) as evidence_zh
    from rings r left join money m using (ring_id)
)
select * from assemble
