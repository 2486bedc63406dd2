-- grain: one row: as_of, the latest plausible time of this input batch. Times more than a
-- day after it are impossible. It is the later of the latest created_at in orders and the
-- latest registered_at in accounts (a night's export of updates to older orders still
-- carries tonight's registrations) among times in 2000-2099, ignoring values more than a
-- year beyond the 90th percentile, so one garbage "2099-01-01" cannot move the clock.
with
raw_orders as (
    select created_at from raw.orders
),
raw_accounts as (
    select registered_at from raw.accounts
),
trim_order_times as (
    select stg_text(created_at) as created_at from raw_orders
),
trim_account_times as (
    select stg_text(registered_at) as registered_at from raw_accounts
),
parse_order_times as materialized (
    select stg_ts(created_at) as ts from trim_order_times
),
parse_account_times as materialized (
    select stg_ts(registered_at) as ts from trim_account_times
),
bound_orders as (
    select quantile_disc(ts, 0.9) + interval 366 day as bound
    from parse_order_times where ts >= timestamp '2000-01-01' and ts < timestamp '2100-01-01'
),
bound_accounts as (
    select quantile_disc(ts, 0.9) + interval 366 day as bound
    from parse_account_times where ts >= timestamp '2000-01-01' and ts < timestamp '2100-01-01'
),
find_latest_order as (
    select max(ts) as as_of
    from parse_order_times cross join bound_orders
    where ts >= timestamp '2000-01-01' and ts < timestamp '2100-01-01' and ts <= bound
),
find_latest_account as (
    select max(ts) as as_of
    from parse_account_times cross join bound_accounts
    where ts >= timestamp '2000-01-01' and ts < timestamp '2100-01-01' and ts <= bound
),
choose_clock as (
    select greatest(o.as_of, a.as_of) as as_of
    from find_latest_order o cross join find_latest_account a
)
select * from choose_clock
