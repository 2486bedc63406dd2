-- grain: one row per shop_id, plus shop_id 'ALL' for the whole programme
-- The programme manager's view: how much is sold through distributors and what it costs,
-- commission beyond the levels the programme pays or above the goods' margin, how deep the
-- tree grew, and head-count recruiting (拉人头: invitees who never buy).
with orders as (
    select shop_id, order_id, amount, paid_at, referrer_id from staging.orders
),
ledger as (
    select * from marts.commission_ledger
),
rates as (
    select shop_id, max(level) as paid_levels, max(allowed_levels) as allowed_levels
    from marts.programme_rates group by 1
),
depth as (
    select * from marts.programme_depth
),
scorecard as (
    select distributor_id, grade, direct_downline, invitees_who_bought, reason_codes
    from marts.distributor_scorecard
),
sum_orders as (
    select coalesce(shop_id, 'ALL') as shop_id,
        coalesce(sum(amount) filter (where paid_at is not null), 0) as gmv,
        coalesce(sum(amount) filter (where paid_at is not null and referrer_id is not null), 0)
            as referred_gmv,
        count(*) filter (where referrer_id is not null) as referred_orders
    from orders group by grouping sets ((shop_id), ())
),
sum_per_order as (
    select order_id, shop_id, any_value(order_margin) as order_margin,
        sum(amount) filter (where status <> 'reversed') as commission
    from ledger group by 1, 2
),
sum_commission as (
    select coalesce(l.shop_id, 'ALL') as shop_id,
        sum(l.amount) filter (where l.status <> 'reversed') as commission_earned,
        sum(l.amount) filter (where l.status = 'reversed') as commission_reversed,
        sum(l.amount) filter (where l.status <> 'reversed' and l.level >= 2) as upline_commission,
        sum(l.amount) filter (where l.status <> 'reversed' and l.level > r.paid_levels)
            as commission_beyond_paid_levels,
        max(l.level) as deepest_commission_level,
        any_value(l.source) as commission_source
    from ledger l left join rates r on r.shop_id = l.shop_id
    group by grouping sets ((l.shop_id), ())
),
sum_over_margin as (
    select coalesce(shop_id, 'ALL') as shop_id,
        count(*) filter (where commission > order_margin) as orders_commission_over_margin,
        sum(commission - order_margin) filter (where commission > order_margin)
            as commission_above_margin
    from sum_per_order group by grouping sets ((shop_id), ())
),
sum_depth as (
    select shop_id, max(referral_depth) as max_depth,
        sum(accounts) filter (where beyond_allowed)::bigint as accounts_beyond_allowed
    from depth group by 1
),
list_distributors as (
    select shop_id, referrer_id as distributor_id from orders where referrer_id is not null
    union select shop_id, beneficiary_id from ledger
    union select 'ALL', distributor_id from scorecard
),
sum_distributors as (
    select d.shop_id, count(*) as distributors,
        count(*) filter (where s.grade in ('D', 'E')) as distributors_graded_d_or_e,
        count(*) filter (where list_contains(s.reason_codes, 'RECRUITS_NEVER_BUY'))
            as head_count_recruiters,
        sum(s.direct_downline) as invitees,
        sum(s.direct_downline - s.invitees_who_bought) as invitees_never_bought
    from list_distributors d join scorecard s using (distributor_id) group by 1
),
combine as (
    select o.shop_id, r.paid_levels, r.allowed_levels, o.gmv, o.referred_gmv, o.referred_orders,
        o.referred_gmv / nullif(o.gmv, 0) as referred_gmv_share,
        coalesce(c.commission_earned, 0) as commission_earned,
        coalesce(c.commission_reversed, 0) as commission_reversed,
        c.commission_earned / nullif(o.referred_gmv, 0) as commission_share_of_referred_gmv,
        c.upline_commission / nullif(c.commission_earned, 0) as upline_commission_share,
        coalesce(c.commission_beyond_paid_levels, 0) as commission_beyond_paid_levels,
        c.deepest_commission_level,
        coalesce(m.orders_commission_over_margin, 0) as orders_commission_over_margin,
        coalesce(m.commission_above_margin, 0) as commission_above_margin,
        d.max_depth, coalesce(d.accounts_beyond_allowed, 0) as accounts_beyond_allowed,
        coalesce(s.distributors, 0) as distributors,
        coalesce(s.distributors_graded_d_or_e, 0) as distributors_graded_d_or_e,
        coalesce(s.head_count_recruiters, 0) as head_count_recruiters,
        s.invitees_never_bought / nullif(s.invitees, 0) as invitees_never_bought_share,
        c.commission_source
    from sum_orders o
    left join rates r using (shop_id)
    left join sum_commission c using (shop_id)
    left join sum_over_margin m using (shop_id)
    left join sum_depth d using (shop_id)
    left join sum_distributors s using (shop_id)
)
select * from combine
