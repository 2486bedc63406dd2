-- grain: one row per account_id
-- Position of every account in the referral forest: its root, its depth (root = 0, a
-- direct invitee = 1) and its downline. Accounts on an invite cycle have no root.
with recursive accounts as (
    select account_id, inviter_id from staging.accounts
),
walk(account_id, root_id, depth, ancestors) as (
    select a.account_id, a.account_id, 0, []::varchar[]
    from accounts a
    where a.inviter_id is null or a.inviter_id not in (select account_id from accounts)
    union all
    select a.account_id, w.root_id, w.depth + 1, list_append(w.ancestors, w.account_id)
    from accounts a join walk w on a.inviter_id = w.account_id
    where w.depth < 64
),
downline as (
    select ancestor_id as account_id, count(*) as downline_size, max(depth) as deepest_below
    from (select unnest(ancestors) as ancestor_id, depth from walk)
    group by 1
),
direct as (
    select inviter_id as account_id, count(*) as direct_invitees
    from accounts where inviter_id is not null group by 1
),
assemble as (
    select a.account_id, a.inviter_id, w.root_id, w.depth as referral_depth,
        coalesce(d.downline_size, 0) as downline_size,
        coalesce(dr.direct_invitees, 0) as direct_invitees,
        d.deepest_below,
        (w.account_id is null) as on_invite_cycle
    from accounts a
    left join walk w using (account_id)
    left join downline d using (account_id)
    left join direct dr using (account_id)
)
select * from assemble
