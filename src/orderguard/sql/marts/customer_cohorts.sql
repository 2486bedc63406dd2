-- grain: one row per customer (buyer_id with at least one paid order in the history)
-- When each customer first paid for an order, how they came (referral: invited by a
-- distributor or first order through a share link; organic: neither), when they paid for
-- their next order, how many days of history after the first order the warehouse holds
-- (observable_days, up to the batch clock) and whether they were later flagged.
-- Read from the whole kept history (--keep-days), not the lookback window: 60- and 90-day
-- repeat needs more than the window's 30 nights. "First" is the first the history holds:
-- a customer who also bought before it began counts from there.
with orders as (
    select order_id, buyer_id, referrer_id, created_at,
        status = 'refunded' or refunded_at is not null as is_refund
    from staging.orders_history where paid_at is not null
),
accounts as (
    select account_id, inviter_id from staging.accounts_history
),
clock as (
    select as_of from staging.batch_clock
),
suspects as (
    select account_id from marts.flagged_accounts
    union select account_id from intermediate.ring_members
),
summarise_customers as (
    -- the first order by (created_at, order_id) and the second-earliest time, by aggregates:
    -- numbering every paid order per buyer with a window sorted 10M rows (~1 s more)
    select buyer_id,
        min(created_at) as first_order_at,
        min(created_at, 2)[2] as second_order_at,
        arg_min(referrer_id is not null, (created_at, order_id)) as first_order_referred,
        count(*) as paid_orders,
        count(*) filter (where is_refund) as refunded_orders
    from orders group by 1
),
assign_cohort as (
    select s.buyer_id, s.first_order_at, strftime(s.first_order_at, '%Y-%m') as cohort_month,
        case when a.inviter_id is not null or s.first_order_referred then 'referral'
             else 'organic' end as channel,
        s.second_order_at,
        date_diff('second', s.first_order_at, s.second_order_at) / 86400.0 as days_to_second,
        date_diff('second', s.first_order_at, c.as_of) / 86400.0 as observable_days,
        s.paid_orders, s.refunded_orders,
        s.buyer_id in (select account_id from suspects) as later_flagged
    from summarise_customers s
    cross join clock c
    left join accounts a on a.account_id = s.buyer_id
)
select * from assign_cohort
