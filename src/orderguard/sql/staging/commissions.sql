-- grain: one row per accepted commission line (order_id, level unique), contract order
with
checked_commissions as (
    select * from staging.commissions_checked
),
keep_accepted as (
    select * exclude (_reason, _column, _value) from checked_commissions where _reason is null
)
select * from keep_accepted
