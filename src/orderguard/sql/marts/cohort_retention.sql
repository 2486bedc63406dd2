-- grain: one row per (cohort_month, channel): customers by month of first paid order and
-- how they came (referral / organic)
-- repeat_<n>d_rate: share who paid for another order within n days of the first, among
-- the customers whose first order is at least n days old (null while none is); refund
-- rate over all their paid orders; share flagged or in a ring tonight.
with customers as (
    select * from marts.customer_cohorts
),
count_cohorts as (
    select cohort_month, channel, count(*) as customers,
        count(*) filter (where observable_days >= 30) as observable_30d,
        count(*) filter (where observable_days >= 30 and days_to_second <= 30) as repeat_30d,
        count(*) filter (where observable_days >= 60) as observable_60d,
        count(*) filter (where observable_days >= 60 and days_to_second <= 60) as repeat_60d,
        count(*) filter (where observable_days >= 90) as observable_90d,
        count(*) filter (where observable_days >= 90 and days_to_second <= 90) as repeat_90d,
        count(*) filter (where days_to_second is not null) as repeat_so_far,
        sum(paid_orders)::bigint as paid_orders, sum(refunded_orders)::bigint as refunded_orders,
        count(*) filter (where later_flagged) as flagged_customers
    from customers group by 1, 2
),
compute_rates as (
    select *,
        repeat_30d / nullif(observable_30d, 0) as repeat_30d_rate,
        repeat_60d / nullif(observable_60d, 0) as repeat_60d_rate,
        repeat_90d / nullif(observable_90d, 0) as repeat_90d_rate,
        repeat_so_far / customers as repeat_so_far_rate,
        refunded_orders / paid_orders as refund_rate,
        flagged_customers / customers as flagged_share
    from count_cohorts
)
select * from compute_rates
