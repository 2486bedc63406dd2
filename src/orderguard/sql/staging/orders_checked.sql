-- grain: one row per row of raw.orders (_row): typed contract columns; for a row that
-- fails validation _reason lists every problem, _column names the first, _value its text
with
raw_orders as not materialized (  -- read twice: keep it a plain scan
    select * from raw.orders
),
accepted_accounts as (
    select account_id from staging.accounts
),
known_accounts as (
    select account_id from staging_known_accounts  -- temp view made by validate.stage()
),
batch_clock as (
    select as_of from staging.batch_clock
),
contract_columns as (
    select
        null::varchar as order_id, null::varchar as shop_id, null::varchar as buyer_id,
        null::varchar as product_id, null::varchar as quantity, null::varchar as amount,
        null::varchar as created_at, null::varchar as paid_at, null::varchar as status,
        null::varchar as refunded_at, null::varchar as refund_amount,
        null::varchar as referrer_id, null::varchar as device_id, null::varchar as ip,
        null::varchar as receiver_name, null::varchar as receiver_phone,
        null::varchar as address, null::varchar as payment_account, null::varchar as carrier,
        null::varchar as tracking_no, null::varchar as shipped_at,
        null::varchar as delivered_at, null::varchar as review_rating,
        null::varchar as reviewed_at
    where false
),
add_missing_columns as (
    select * from raw_orders union all by name select * from contract_columns
),
trim_text as (
    select stg_text(COLUMNS(lambda c: list_contains($order_columns, c))), _row, _file
    from add_missing_columns  -- contract columns only; extra input columns stay in raw
),
find_duplicates as (
    select stg_text(order_id) as order_id, min(_row) as first_row
    from raw_orders where stg_text(order_id) is not null
    group by 1 having count(*) > 1
),
list_buyers as (
    select account_id from accepted_accounts
    union
    select account_id::varchar from known_accounts
),
parse_values as (
    select
        t as _text,
        t.order_id, t.shop_id, t.buyer_id, t.product_id,
        stg_int(t.quantity) as quantity,
        stg_decimal(t.amount) as amount,
        stg_ts(t.created_at) as created_at,
        stg_ts(t.paid_at) as paid_at,
        stg_enum(t.status, map($status_alias_keys, $status_alias_values)) as status,
        stg_ts(t.refunded_at) as refunded_at,
        stg_decimal(t.refund_amount) as refund_amount,
        t.referrer_id, t.device_id, t.ip, t.receiver_name, t.receiver_phone, t.address,
        t.payment_account, t.carrier, t.tracking_no,
        stg_ts(t.shipped_at) as shipped_at,
        stg_ts(t.delivered_at) as delivered_at,
        stg_int(t.review_rating) as review_rating,
        stg_ts(t.reviewed_at) as reviewed_at,
        t._row, t._file,
        d.first_row as _first_row,
        b.account_id is not null as _buyer_known
    from trim_text t
    left join find_duplicates d on t.order_id = d.order_id and t._row > d.first_row
    left join list_buyers b on t.buyer_id = b.account_id
),
check_values as (
    select
        p.*,
        nullif(concat_ws('; ',
            stg_check_text('order_id', order_id, true, $max_text_length),
            stg_check_text('shop_id', shop_id, true, $max_text_length),
            stg_check_text('buyer_id', buyer_id, true, $max_text_length),
            stg_check_text('product_id', product_id, true, $max_text_length),
            stg_check('quantity', _text.quantity, quantity, true, 'a whole number'),
            stg_check_range('quantity', quantity, 1, null),
            stg_check('amount', _text.amount, amount, true, 'an amount of money'),
            stg_check_range('amount', amount, 0, null),
            stg_check('created_at', _text.created_at, created_at, true, 'a date and time'),
            stg_check_time('created_at', created_at, c.as_of),
            stg_check('paid_at', _text.paid_at, paid_at, false, 'a date and time'),
            stg_check_time('paid_at', paid_at, c.as_of),
            case when paid_at < created_at - interval 1 minute then 'paid_at ' || paid_at
                || ' is more than a minute before created_at ' || created_at end,
            stg_check_enum('status', _text.status, status, $order_statuses),
            stg_check('refunded_at', _text.refunded_at, refunded_at, false, 'a date and time'),
            stg_check_time('refunded_at', refunded_at, c.as_of),
            stg_check('refund_amount', _text.refund_amount, refund_amount, false, 'an amount of money'),
            stg_check_range('refund_amount', refund_amount, 0, null),
            case when refund_amount > amount then 'refund_amount ' || refund_amount
                || ' is more than amount ' || amount end,
            stg_check_text('referrer_id', referrer_id, false, $max_text_length),
            stg_check_text('device_id', device_id, false, $max_text_length),
            stg_check_text('ip', ip, false, $max_text_length),
            stg_check_text('receiver_name', receiver_name, false, $max_text_length),
            stg_check_text('receiver_phone', receiver_phone, false, $max_text_length),
            stg_check_text('address', address, false, $max_text_length),
            stg_check_text('payment_account', payment_account, false, $max_text_length),
            stg_check_text('carrier', carrier, false, $max_text_length),
            stg_check_text('tracking_no', tracking_no, false, $max_text_length),
            stg_check('shipped_at', _text.shipped_at, shipped_at, false, 'a date and time'),
            stg_check_time('shipped_at', shipped_at, c.as_of),
            stg_check('delivered_at', _text.delivered_at, delivered_at, false, 'a date and time'),
            stg_check_time('delivered_at', delivered_at, c.as_of),
            stg_check('review_rating', _text.review_rating, review_rating, false, 'a whole number'),
            stg_check_range('review_rating', review_rating, 1, 5),
            stg_check('reviewed_at', _text.reviewed_at, reviewed_at, false, 'a date and time'),
            stg_check_time('reviewed_at', reviewed_at, c.as_of),
            case when _first_row is not null then 'order_id ' || stg_show(order_id)
                || ' repeats row ' || _first_row || ' (only the first occurrence is used, even when it is rejected)' end,
            case when buyer_id is not null and not _buyer_known then 'buyer_id '
                || stg_show(buyer_id) || ' is neither in accounts nor a known account' end
        ), '') as _reason
    from parse_values p cross join batch_clock c
),
explain_problems as (
    select
        order_id, shop_id, buyer_id, product_id, quantity, amount, created_at, paid_at,
        status, refunded_at, refund_amount, referrer_id, device_id, ip, receiver_name,
        receiver_phone, address, payment_account, carrier, tracking_no, shipped_at,
        delivered_at, review_rating, reviewed_at,
        _row, _file, _reason,
        split_part(_reason, ' ', 1) as _column,
        case when _reason is not null
             then left(to_json(_text) ->> split_part(_reason, ' ', 1), 200) end as _value
    from check_values
)
select * from explain_problems
