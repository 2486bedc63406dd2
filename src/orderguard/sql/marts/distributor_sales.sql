-- grain: one row per distributor_id that referred an order or earns commission
-- What their share links sold (orders, GMV, refund and cancel rates against the rates of
-- the same shops) and what they earn (commission by status, on flagged orders, against
-- the margin of the goods, refunds soon after their commission settled). commission_detail
-- lists their commission per (level, status), so scorecards reconcile with the ledger.
with orders as (
    select order_id, shop_id, referrer_id, buyer_id, amount, paid_at,
        status = 'refunded' or refunded_at is not null as is_refund,
        status = 'cancelled' as is_cancel
    from staging.orders
),
scores as (  -- the window's: marts.order_scores holds tonight's export only
    select order_id, risk_level from intermediate.order_scores
),
ledger as (
    select * from marts.commission_ledger
),
measure_shops as (
    select shop_id, avg(is_refund::int) filter (where paid_at is not null) as shop_refund_rate,
           avg(is_cancel::int) as shop_cancel_rate
    from orders group by 1
),
sum_referred as (
    select o.referrer_id as distributor_id, count(*) as referred_orders,
        count(*) filter (where o.paid_at is not null) as referred_paid_orders,
        coalesce(sum(o.amount) filter (where o.paid_at is not null), 0) as referred_gmv,
        count(distinct o.buyer_id) as referred_buyers,
        count(*) filter (where o.is_refund) as referred_refunds,
        count(*) filter (where o.is_cancel) as referred_cancels,
        sum(m.shop_refund_rate) filter (where o.paid_at is not null) as expected_refunds,
        sum(m.shop_cancel_rate) as expected_cancels,
        count(*) filter (where s.risk_level <> 'low') as referred_flagged_orders,
        string_agg(distinct o.shop_id, ';' order by o.shop_id) as shops
    from orders o left join measure_shops m using (shop_id) left join scores s using (order_id)
    where o.referrer_id is not null
    group by 1
),
sum_commission as (
    select beneficiary_id as distributor_id,
        sum(amount) filter (where status <> 'reversed') as commission_earned,
        sum(amount) filter (where status = 'settled') as commission_settled,
        sum(amount) filter (where status = 'pending') as commission_pending,
        sum(amount) filter (where status = 'reversed') as commission_reversed,
        sum(amount) filter (where status <> 'reversed' and order_flagged) as commission_at_stake,
        sum(amount) filter (where status = 'pending' and order_flagged) as commission_pending_flagged,
        sum(amount) filter (where status <> 'reversed' and order_flagged
            and order_ring_kind is distinct from 'deep_chain') as commission_at_stake_not_depth,
        sum(amount) filter (where status <> 'reversed' and order_margin is not null)
            / nullif(sum(order_margin) filter (where status <> 'reversed'), 0) as commission_margin_share,
        count(distinct order_id) filter (
            where refund_after_settle_h between 0 and $arbitrage_hours) as refunds_after_settlement
    from ledger where beneficiary_id is not null group by 1
),
sum_levels as (
    select beneficiary_id as distributor_id, level, status, sum(amount) as amount
    from ledger where beneficiary_id is not null group by all
),
nest_levels as (
    select distributor_id,
        list({'level': level, 'status': status, 'amount': amount} order by level, status)
            as commission_detail
    from sum_levels group by 1
),
combine as (
    select coalesce(r.distributor_id, c.distributor_id) as distributor_id, r.shops,
        coalesce(r.referred_orders, 0) as referred_orders,
        coalesce(r.referred_paid_orders, 0) as referred_paid_orders,
        coalesce(r.referred_gmv, 0) as referred_gmv,
        coalesce(r.referred_buyers, 0) as referred_buyers,
        coalesce(r.referred_refunds, 0) as referred_refunds,
        coalesce(r.referred_cancels, 0) as referred_cancels,
        r.referred_refunds / nullif(r.referred_paid_orders, 0) as refund_rate,
        r.expected_refunds / nullif(r.referred_paid_orders, 0) as shop_refund_rate,
        r.referred_cancels / nullif(r.referred_orders, 0) as cancel_rate,
        r.expected_cancels / nullif(r.referred_orders, 0) as shop_cancel_rate,
        coalesce(r.referred_flagged_orders, 0) as referred_flagged_orders,
        coalesce(c.commission_earned, 0) as commission_earned,
        coalesce(c.commission_settled, 0) as commission_settled,
        coalesce(c.commission_pending, 0) as commission_pending,
        coalesce(c.commission_reversed, 0) as commission_reversed,
        coalesce(c.commission_at_stake, 0) as commission_at_stake,
        coalesce(c.commission_pending_flagged, 0) as commission_pending_flagged,
        coalesce(c.commission_at_stake_not_depth, 0) as commission_at_stake_not_depth,
        c.commission_margin_share,
        coalesce(c.refunds_after_settlement, 0) as refunds_after_settlement,
        n.commission_detail
    from sum_referred r
    full join sum_commission c using (distributor_id)
    left join nest_levels n using (distributor_id)
)
select * from combine
