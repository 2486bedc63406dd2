-- grain: one row per accepted order (order_id unique), contract columns in contract order
with
checked_orders as (
    select * from staging.orders_checked
),
keep_accepted as (
    select * exclude (_reason, _column, _value) from checked_orders where _reason is null
)
select * from keep_accepted
