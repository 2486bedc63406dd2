-- grain: one row: tonight's rings taken together, each order counted once
-- An order can be in two rings (a flood that is also a self-referral circle): summing
-- marts.rings counts it twice. Commission excludes reversed rows, as commission_at_stake.
with ring_orders as (
    select distinct order_id from intermediate.ring_orders
),
orders as (
    select order_id, amount from staging.orders
),
commissions as (
    select order_id, sum(amount) filter (where status <> 'reversed') as commission,
           sum(amount) filter (where status = 'pending') as commission_pending
    from staging.commissions group by 1
),
sum_money as (
    select count(*) as orders, coalesce(sum(o.amount), 0) as gmv,
           coalesce(sum(c.commission), 0) as commission_at_stake,
           coalesce(sum(c.commission_pending), 0) as commission_pending,
           $run_id as run_id
    from ring_orders ro
    join orders o using (order_id)
    left join commissions c using (order_id)
)
select * from sum_money
