-- grain: one row per accepted product (product_id unique), contract columns in contract order
with
checked_products as (
    select * from staging.products_checked
),
keep_accepted as (
    select * exclude (_reason, _column, _value) from checked_products where _reason is null
)
select * from keep_accepted
