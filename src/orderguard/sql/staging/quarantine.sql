-- grain: one row per rejected input row of this run (table_name, row_number); appended to
-- ops.quarantine by validate.stage()
with
checked_orders as (
    select 'orders' as table_name, _file, _row, _column, _value, _reason
    from staging.orders_checked where _reason is not null
),
checked_accounts as (
    select 'accounts' as table_name, _file, _row, _column, _value, _reason
    from staging.accounts_checked where _reason is not null
),
checked_products as (
    select 'products' as table_name, _file, _row, _column, _value, _reason
    from staging.products_checked where _reason is not null
),
checked_commissions as (
    select 'commissions' as table_name, _file, _row, _column, _value, _reason
    from staging.commissions_checked where _reason is not null
),
unreadable_records as (  -- records ingest could not split into fields: nothing was parsed
    select table_name, _file, _row, column_name as _column, left(record, 200) as _value,
           reason as _reason
    from raw.unreadable_records
),
combine_tables as (
    select * from checked_orders
    union all select * from checked_accounts
    union all select * from checked_products
    union all select * from checked_commissions
    union all select * from unreadable_records
),
label_run as (
    select
        $run_id::varchar as run_id, table_name, _file as file, _row as row_number,
        _column as column_name, _value as value, _reason as reason
    from combine_tables
    order by table_name, row_number
)
select * from label_run
