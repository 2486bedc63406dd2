-- grain: one row per row of raw.accounts (_row): typed contract columns; for a row that
-- fails validation _reason lists every problem, _column names the first, _value its text
with
raw_accounts as not materialized (  -- read twice: keep it a plain scan
    select * from raw.accounts
),
batch_clock as (
    select as_of from staging.batch_clock
),
contract_columns as (
    select
        null::varchar as account_id, null::varchar as registered_at,
        null::varchar as inviter_id, null::varchar as is_distributor,
        null::varchar as phone, null::varchar as device_id, null::varchar as ip,
        null::varchar as nickname
    where false
),
add_missing_columns as (
    select * from raw_accounts union all by name select * from contract_columns
),
trim_text as (
    select stg_text(COLUMNS(lambda c: list_contains($account_columns, c))), _row, _file
    from add_missing_columns  -- contract columns only; extra input columns stay in raw
),
find_duplicates as (
    select stg_text(account_id) as account_id, min(_row) as first_row
    from raw_accounts where stg_text(account_id) is not null
    group by 1 having count(*) > 1
),
parse_values as (
    select
        t as _text,
        t.account_id,
        stg_ts(t.registered_at) as registered_at,
        t.inviter_id,
        stg_bool(t.is_distributor) as is_distributor,
        t.phone, t.device_id, t.ip, t.nickname,
        t._row, t._file,
        d.first_row as _first_row
    from trim_text t
    left join find_duplicates d on t.account_id = d.account_id and t._row > d.first_row
),
check_values as (
    select
        p.*,
        nullif(concat_ws('; ',
            stg_check_text('account_id', account_id, true, $max_text_length),
            stg_check('registered_at', _text.registered_at, registered_at, true, 'a date and time'),
            stg_check_time('registered_at', registered_at, c.as_of),
            stg_check_text('inviter_id', inviter_id, false, $max_text_length),
            stg_check('is_distributor', _text.is_distributor, is_distributor, false, 'true or false'),
            stg_check_text('phone', phone, false, $max_text_length),
            stg_check_text('device_id', device_id, false, $max_text_length),
            stg_check_text('ip', ip, false, $max_text_length),
            stg_check_text('nickname', nickname, false, $max_text_length),
            case when _first_row is not null then 'account_id ' || stg_show(account_id)
                || ' repeats row ' || _first_row || ' (only the first occurrence is used, even when it is rejected)' end
        ), '') as _reason
    from parse_values p cross join batch_clock c
),
explain_problems as (
    select
        account_id, registered_at, inviter_id, is_distributor, phone, device_id, ip, nickname,
        _row, _file, _reason,
        split_part(_reason, ' ', 1) as _column,
        case when _reason is not null
             then left(to_json(_text) ->> split_part(_reason, ' ', 1), 200) end as _value
    from check_values
)
select * from explain_problems
