-- grain: one row per (shop_id, referral_depth); shop_id 'ALL' is the whole referral forest
-- How many accounts sit at each depth of the referral tree (0 = a root: registered without
-- an inviter) and whether that depth is beyond what the programme allows. An account
-- belongs to a shop's programme when it bought, referred or earned commission there.
with tree as (
    select account_id, referral_depth from intermediate.referral_tree
    where referral_depth is not null
),
orders as (
    select shop_id, buyer_id, referrer_id from staging.orders
),
ledger as (
    select shop_id, beneficiary_id from marts.commission_ledger
),
rates as (
    select shop_id, max(allowed_levels) as allowed_levels from marts.programme_rates group by 1
),
list_members as (
    select shop_id, buyer_id as account_id from orders
    union select shop_id, referrer_id from orders where referrer_id is not null
    union select shop_id, beneficiary_id from ledger
    union select 'ALL', account_id from tree
),
count_depths as (
    select m.shop_id, t.referral_depth, count(*) as accounts
    from list_members m join tree t using (account_id)
    group by all
),
compare_allowed as (
    select c.*, r.allowed_levels, c.referral_depth > r.allowed_levels as beyond_allowed
    from count_depths c left join rates r using (shop_id)
)
select * from compare_allowed
