-- grain: one row per distributor_id: recruiting, sales and commission side by side, with
-- the distributor's own place in the tree and rings (distributor_scorecard grades it)
-- A distributor is an account marked as one, anyone who invited an account, referred an
-- order or earned commission (a beneficiary need not be in tonight's accounts).
with accounts as (
    select account_id, registered_at, inviter_id, is_distributor from staging.accounts
),
tree as (
    select account_id, root_id, referral_depth from intermediate.referral_tree
),
recruiting as (
    select * from marts.distributor_recruiting
),
sales as (
    select * from marts.distributor_sales
),
ring_members as (
    select * from intermediate.ring_members
),
list_distributors as (
    select account_id as distributor_id from accounts where is_distributor
    union select distributor_id from recruiting
    union select distributor_id from sales
),
sum_rings as (
    select account_id as distributor_id,
        bool_or(kind = 'self_referral' and role = 'owner') as owns_self_referral_ring,
        -- the self-referral rings it owns, named apart from the rings it is only a member of
        string_agg(distinct ring_id, ';' order by ring_id)
            filter (where kind = 'self_referral' and role = 'owner') as owned_ring_ids,
        string_agg(distinct ring_id, ';' order by ring_id) as ring_ids
    from ring_members group by 1
),
combine as (
    select d.distributor_id, a.registered_at,
        coalesce(a.is_distributor, false) as marked_distributor, t.root_id, t.referral_depth,
        coalesce(r.direct_downline, 0) as direct_downline,
        coalesce(r.total_downline, 0) as total_downline,
        coalesce(r.levels_below, 0) as levels_below,
        coalesce(r.circle_size, 0) as circle_size,
        coalesce(r.linked_accounts, 0) as linked_accounts,
        coalesce(r.downline_suspects, 0) as downline_suspects,
        coalesce(r.downline_suspect_share, 0) as downline_suspect_share,
        coalesce(r.invitees_per_day, 0) as invitees_per_day,
        coalesce(r.max_invitees_in_burst, 0) as max_invitees_in_burst,
        coalesce(r.invitees_who_bought, 0) as invitees_who_bought,
        coalesce(r.settled_invitees, 0) as settled_invitees,
        coalesce(r.settled_invitees_who_bought, 0) as settled_invitees_who_bought,
        r.first_invitee_at, r.last_invitee_at,
        s.shops,
        coalesce(s.referred_orders, 0) as referred_orders,
        coalesce(s.referred_paid_orders, 0) as referred_paid_orders,
        coalesce(s.referred_gmv, 0) as referred_gmv,
        coalesce(s.referred_buyers, 0) as referred_buyers,
        coalesce(s.referred_refunds, 0) as referred_refunds,
        coalesce(s.referred_cancels, 0) as referred_cancels,
        s.refund_rate, s.shop_refund_rate, s.cancel_rate, s.shop_cancel_rate,
        coalesce(s.referred_flagged_orders, 0) as referred_flagged_orders,
        coalesce(s.commission_earned, 0) as commission_earned,
        coalesce(s.commission_settled, 0) as commission_settled,
        coalesce(s.commission_pending, 0) as commission_pending,
        coalesce(s.commission_reversed, 0) as commission_reversed,
        coalesce(s.commission_at_stake, 0) as commission_at_stake,
        coalesce(s.commission_pending_flagged, 0) as commission_pending_flagged,
        coalesce(s.commission_at_stake_not_depth, 0) as commission_at_stake_not_depth,
        s.commission_margin_share,
        coalesce(s.refunds_after_settlement, 0) as refunds_after_settlement,
        s.commission_detail,
        coalesce(g.owns_self_referral_ring, false) as owns_self_referral_ring, g.owned_ring_ids,
        g.ring_ids
    from list_distributors d
    left join accounts a on a.account_id = d.distributor_id
    left join tree t on t.account_id = d.distributor_id
    left join recruiting r using (distributor_id)
    left join sales s using (distributor_id)
    left join sum_rings g using (distributor_id)
)
select * from combine
