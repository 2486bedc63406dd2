-- grain: one row per row of raw.products (_row): typed contract columns; for a row that
-- fails validation _reason lists every problem, _column names the first, _value its text
with
raw_products as not materialized (  -- read twice: keep it a plain scan
    select * from raw.products
),
contract_columns as (
    select
        null::varchar as product_id, null::varchar as shop_id, null::varchar as name,
        null::varchar as price, null::varchar as cost, null::varchar as category,
        null::varchar as is_virtual
    where false
),
add_missing_columns as (
    select * from raw_products union all by name select * from contract_columns
),
trim_text as (
    select stg_text(COLUMNS(lambda c: list_contains($product_columns, c))), _row, _file
    from add_missing_columns  -- contract columns only; extra input columns stay in raw
),
find_duplicates as (
    select stg_text(product_id) as product_id, min(_row) as first_row
    from raw_products where stg_text(product_id) is not null
    group by 1 having count(*) > 1
),
parse_values as (
    select
        t as _text,
        t.product_id, t.shop_id, t.name,
        stg_decimal(t.price) as price,
        stg_decimal(t.cost) as cost,
        t.category,
        stg_bool(t.is_virtual) as is_virtual,
        t._row, t._file,
        d.first_row as _first_row
    from trim_text t
    left join find_duplicates d on t.product_id = d.product_id and t._row > d.first_row
),
check_values as (
    select
        *,
        nullif(concat_ws('; ',
            stg_check_text('product_id', product_id, true, $max_text_length),
            stg_check_text('shop_id', shop_id, false, $max_text_length),
            stg_check_text('name', name, false, $max_text_length),
            stg_check('price', _text.price, price, false, 'an amount of money'),
            stg_check_range('price', price, 0, null),
            stg_check('cost', _text.cost, cost, false, 'an amount of money'),
            stg_check_range('cost', cost, 0, null),
            stg_check_text('category', category, false, $max_text_length),
            stg_check('is_virtual', _text.is_virtual, is_virtual, false, 'true or false'),
            case when _first_row is not null then 'product_id ' || stg_show(product_id)
                || ' repeats row ' || _first_row || ' (only the first occurrence is used, even when it is rejected)' end
        ), '') as _reason
    from parse_values
),
explain_problems as (
    select
        product_id, shop_id, name, price, cost, category, is_virtual,
        _row, _file, _reason,
        split_part(_reason, ' ', 1) as _column,
        case when _reason is not null
             then left(to_json(_text) ->> split_part(_reason, ' ', 1), 200) end as _value
    from check_values
)
select * from explain_problems
