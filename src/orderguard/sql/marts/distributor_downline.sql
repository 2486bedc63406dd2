-- grain: one row per (distributor_id, account_id): every account in a distributor's downline
-- distance 1 is a direct invitee, 2 an invitee's invitee, ... Invite cycles stop at 64.
with recursive accounts as (
    select account_id, inviter_id from staging.accounts where inviter_id is not null
),
walk_down(distributor_id, account_id, distance) as (
    select inviter_id, account_id, 1 from accounts
    union all
    select w.distributor_id, a.account_id, w.distance + 1
    from walk_down w join accounts a on a.inviter_id = w.account_id
    where w.distance < 64
),
keep_nearest as (
    select distributor_id, account_id, min(distance) as distance
    from walk_down
    where distributor_id <> account_id
    group by 1, 2
)
select * from keep_nearest
