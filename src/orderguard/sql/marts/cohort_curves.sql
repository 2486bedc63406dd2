-- grain: one row per (cohort_month, channel, day) for day 1..90 after the first order
-- The repeat-purchase curve of each cohort: of the customers whose first paid order is at
-- least `day` days old, the share who had paid for another order by then. A curve stops
-- at the last day any of its customers can be observed.
with customers as (
    select * from marts.customer_cohorts
),
list_days as (
    select unnest(generate_series(1, 90)) as day
),
bucket_customers as (
    select cohort_month, channel, floor(observable_days)::integer as observable_day,
        ceil(days_to_second)::integer as repeat_day, count(*) as customers
    from customers group by all
),
count_curves as (
    select b.cohort_month, b.channel, d.day,
        sum(b.customers)::bigint as observable,
        coalesce(sum(b.customers) filter (where b.repeat_day <= d.day), 0)::bigint as repeated
    from bucket_customers b join list_days d on b.observable_day >= d.day
    group by all
),
compute_rates as (
    select *, repeated / observable as repeat_rate from count_curves
)
select * from compute_rates
