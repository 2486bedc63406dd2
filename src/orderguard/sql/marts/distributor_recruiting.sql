-- grain: one row per distributor_id that invited, referred or has a downline
-- Who they brought in and how: direct invitees, bursts of registrations, invitees who never
-- bought, the downline below them and how much of it is suspect, and their circle (downline
-- plus the buyers they referred) with the accounts in it linked to them by an identifier
-- rare enough to point at one person or household (account_pairs.max_weight >= $link_weight).
-- Depth is judged once, by levels_below: accounts caught only by the deep-chain ring do not
-- count as suspects.
with accounts as (
    select account_id, registered_at, inviter_id from staging.accounts
),
paid_buyers as (
    select distinct buyer_id as account_id from staging.orders where paid_at is not null
),
referred as (
    select distinct referrer_id as distributor_id, buyer_id as account_id from staging.orders
    where referrer_id is not null and buyer_id <> referrer_id
),
downline as (
    select * from marts.distributor_downline
),
pairs as (
    select account_a, account_b from intermediate.account_pairs where max_weight >= $link_weight
),
suspects as (
    select account_id from marts.flagged_accounts where ring_kind is distinct from 'deep_chain'
    union select account_id from intermediate.ring_members where kind <> 'deep_chain'
),
clock as (
    select as_of from staging.batch_clock
),
mark_invitees as (
    select a.inviter_id as distributor_id, a.account_id, a.registered_at,
        count(*) over (partition by a.inviter_id order by a.registered_at
            range between current row and to_minutes($burst_minutes::bigint) following) as in_burst,
        b.account_id is not null as bought,
        a.registered_at <= c.as_of - to_days($never_buy_min_days::integer) as had_time_to_buy
    from accounts a cross join clock c left join paid_buyers b using (account_id)
    where a.inviter_id is not null
),
sum_invitees as (
    select distributor_id, count(*) as direct_downline,
        min(registered_at) as first_invitee_at, max(registered_at) as last_invitee_at,
        count(*) / greatest(1.0, date_diff('minute', min(registered_at), max(registered_at))
            / 1440.0) as invitees_per_day,
        max(in_burst) as max_invitees_in_burst,
        count(*) filter (where bought) as invitees_who_bought,
        count(*) filter (where had_time_to_buy) as settled_invitees,
        count(*) filter (where had_time_to_buy and bought) as settled_invitees_who_bought
    from mark_invitees group by 1
),
sum_downline as (
    select d.distributor_id, count(*) as total_downline, max(d.distance) as levels_below,
        count(s.account_id) as downline_suspects
    from downline d left join suspects s using (account_id) group by 1
),
list_circle as (
    select distributor_id, account_id from downline union select * from referred
),
sum_circle as (
    select c.distributor_id, count(*) as circle_size, count(p.account_a) as linked_accounts
    from list_circle c
    left join pairs p on p.account_a = least(c.distributor_id, c.account_id)
        and p.account_b = greatest(c.distributor_id, c.account_id)
    group by 1
),
combine as (
    select c.distributor_id, c.circle_size, c.linked_accounts,
        coalesce(i.direct_downline, 0) as direct_downline,
        coalesce(d.total_downline, 0) as total_downline,
        coalesce(d.levels_below, 0) as levels_below,
        coalesce(d.downline_suspects, 0) as downline_suspects,
        coalesce(d.downline_suspects / nullif(d.total_downline, 0), 0) as downline_suspect_share,
        coalesce(i.invitees_per_day, 0) as invitees_per_day,
        coalesce(i.max_invitees_in_burst, 0) as max_invitees_in_burst,
        coalesce(i.invitees_who_bought, 0) as invitees_who_bought,
        coalesce(i.settled_invitees, 0) as settled_invitees,
        coalesce(i.settled_invitees_who_bought, 0) as settled_invitees_who_bought,
        i.first_invitee_at, i.last_invitee_at
    from sum_circle c
    left join sum_invitees i using (distributor_id)
    left join sum_downline d using (distributor_id)
)
select * from combine
