-- grain: one row per (shop_id, level, status); shop_id 'ALL' sums every shop
-- Commission paid per level against the configured rate, and whether the level is one
-- the programme pays at all.
with ledger as (
    select * from marts.commission_ledger
),
rates as (
    select * from marts.programme_rates
),
sum_levels as (
    select coalesce(shop_id, 'ALL') as shop_id, level, status,
        count(distinct order_id) as orders,
        sum(amount) as commission,
        sum(order_amount) as paid_amount,
        count(distinct beneficiary_id) as beneficiaries,
        any_value(source) as source
    from ledger
    group by grouping sets ((shop_id, level, status), (level, status))
),
compare_rates as (
    select s.*,
        s.commission / nullif(s.paid_amount, 0) as effective_rate,
        r.configured_rate,
        r.configured_rate is null as beyond_programme
    from sum_levels s
    left join rates r on r.shop_id = s.shop_id and r.level = s.level
)
select * from compare_rates
