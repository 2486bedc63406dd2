-- grain: one row per accepted account (account_id unique), contract columns in contract order
with
checked_accounts as (
    select * from staging.accounts_checked
),
keep_accepted as (
    select * exclude (_reason, _column, _value) from checked_accounts where _reason is null
)
select * from keep_accepted
