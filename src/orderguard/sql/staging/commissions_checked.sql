-- grain: one row per row of raw.commissions (_row): typed contract columns; for a row that
-- fails validation _reason lists every problem, _column names the first, _value its text
with
raw_commissions as (
    select * from raw.commissions
),
accepted_orders as (
    select order_id from staging.orders
),
batch_clock as (
    select as_of from staging.batch_clock
),
contract_columns as (
    select
        null::varchar as order_id, null::varchar as beneficiary_id, null::varchar as level,
        null::varchar as amount, null::varchar as status, null::varchar as settled_at
    where false
),
add_missing_columns as (
    select * from raw_commissions union all by name select * from contract_columns
),
trim_text as (
    select stg_text(COLUMNS(lambda c: list_contains($commission_columns, c))), _row, _file
    from add_missing_columns  -- contract columns only; extra input columns stay in raw
),
parse_values as (
    select
        t as _text,
        t.order_id, t.beneficiary_id,
        stg_int(t.level) as level,
        stg_decimal(t.amount) as amount,
        stg_enum(t.status, map($commission_alias_keys, $commission_alias_values)) as status,
        stg_ts(t.settled_at) as settled_at,
        t._row, t._file,
        t.order_id in (select order_id from accepted_orders) as _order_known
    from trim_text t
),
find_duplicates as (
    select order_id, level, min(_row) as first_row
    from parse_values where order_id is not null and level is not null
    group by order_id, level having count(*) > 1
),
check_values as (
    select
        p.*,
        nullif(concat_ws('; ',
            stg_check_text('order_id', p.order_id, true, $max_text_length),
            stg_check_text('beneficiary_id', beneficiary_id, true, $max_text_length),
            stg_check('level', _text.level, p.level, true, 'a whole number'),
            stg_check_range('level', p.level, 1, null),
            stg_check('amount', _text.amount, amount, true, 'an amount of money'),
            stg_check_range('amount', amount, 0, null),
            stg_check_enum('status', _text.status, status, $commission_statuses),
            stg_check('settled_at', _text.settled_at, settled_at, false, 'a date and time'),
            stg_check_time('settled_at', settled_at, c.as_of),
            case when d.first_row is not null then 'order_id ' || stg_show(p.order_id)
                || ' with level ' || p.level || ' repeats row ' || d.first_row
                || ' (only the first occurrence is used, even when it is rejected)' end,
            case when p.order_id is not null and not _order_known then 'order_id '
                || stg_show(p.order_id) || ' is not an accepted order' end
        ), '') as _reason
    from parse_values p
    cross join batch_clock c
    left join find_duplicates d
        on p.order_id = d.order_id and p.level = d.level and p._row > d.first_row
),
explain_problems as (
    select
        order_id, beneficiary_id, level, amount, status, settled_at,
        _row, _file, _reason,
        split_part(_reason, ' ', 1) as _column,
        case when _reason is not null
             then left(to_json(_text) ->> split_part(_reason, ' ', 1), 200) end as _value
    from check_values
)
select * from explain_problems
