-- grain: one row per order_id with a referrer or a commission; an order without a row has
-- neither (its readers left join: every fact below is null for it)
-- Commission facts per order: is the buyer linked to the distributor who earns on it,
-- was it refunded soon after its commission settled, does commission exceed margin.
-- Only those orders are written: at 10M orders ~9M rows said "no referrer, no commission".
with order_keys as (
    select order_id, buyer_id, referrer_id, amount, quantity, product_id, refunded_at, status
    from intermediate.order_keys
),
pairs as (
    select * from intermediate.account_pairs
),
commissions as (
    select order_id, sum(amount) as commission_total, max(level) as max_level,
           max(settled_at) as last_settled_at,
           sum(case when status = 'pending' then amount else 0 end) as commission_pending
    from staging.commissions group by 1
),
products as (
    select product_id, cost from staging.products
),
link_referrer as (
    select o.order_id, o.referrer_id,
        coalesce(p.link_weight, 0) as referrer_link_weight,
        coalesce(p.n_families, 0) as referrer_link_families,
        p.shared_types as referrer_shared_types
    from order_keys o
    left join pairs p
      on (p.account_a = least(o.buyer_id, o.referrer_id)
          and p.account_b = greatest(o.buyer_id, o.referrer_id))
    where o.referrer_id is not null
),
combine as (
    select o.order_id, o.buyer_id, o.referrer_id,
        l.referrer_link_weight, l.referrer_link_families, l.referrer_shared_types,
        c.commission_total, c.commission_pending, c.max_level as commission_max_level,
        date_diff('minute', c.last_settled_at, o.refunded_at) / 60.0 as refund_after_settle_h,
        c.commission_total > (o.amount - coalesce(pr.cost, 0) * o.quantity)
            and pr.cost is not null as commission_over_margin
    from order_keys o
    left join link_referrer l using (order_id)
    left join commissions c using (order_id)
    left join products pr using (product_id)
    where o.referrer_id is not null or c.order_id is not null
)
select * from combine
