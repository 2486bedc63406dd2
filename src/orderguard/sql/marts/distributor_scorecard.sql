-- grain: one row per distributor_id (per run): the activity figures, the concerns they
-- raise (reason codes, English reasons, points) and a risk grade A (healthy) .. E
-- Thresholds come from programme.toml [scorecard]; each concern adds the points noted.
with activity as (
    select * from marts.distributor_activity
),
allowed as (
    select max(allowed_levels) as allowed_levels from marts.programme_rates where shop_id = 'ALL'
),
judge_concerns as (
    select a.*, [
        -- 4: owns a ring of its own alt accounts
        case when owns_self_referral_ring then {'code': 'OWNS_SELF_REFERRAL_RING', 'points': 4.0,
            'text': 'owns self-referral ring ' || owned_ring_ids
                || case when ring_ids <> owned_ring_ids then ' (in rings ' || ring_ids || ')' else '' end} end,
        -- 2: is in a ring (not as its owner)
        case when ring_ids is not null and not owns_self_referral_ring then {'code': 'IN_RING',
            'points': 2.0, 'text': 'is a member of ring ' || ring_ids} end,
        -- 1.5 for one, 3 for two or more linked accounts making up half the circle
        case when linked_accounts >= 1 then {'code': 'LINKED_CIRCLE',
            'points': case when linked_accounts >= 2 and linked_accounts >= 0.5 * circle_size
                           then 3.0 else 1.5 end,
            'text': format('{} of the {} accounts they invited or sold to share a device, phone, '
                           'payer or address with them', linked_accounts, circle_size)} end,
        -- 2: refunds right after the commission settled
        case when refunds_after_settlement >= 2 then {'code': 'REFUNDS_AFTER_SETTLEMENT', 'points': 2.0,
            'text': format('refunds cluster after settlement: {} orders refunded within {} h of '
                           'their commission settling', refunds_after_settlement, round($arbitrage_hours)::integer)} end,
        -- 1: refunds / cancellations far above the shop's rate
        case when referred_refunds >= $min_events and refund_rate >= $rate_lift * shop_refund_rate
            then {'code': 'HIGH_REFUND_RATE', 'points': 1.0,
            'text': format('referred orders refunded at {:.0f}% against the shop''s {:.0f}%',
                           100 * refund_rate, 100 * shop_refund_rate)} end,
        case when referred_cancels >= $min_events and cancel_rate >= $rate_lift * shop_cancel_rate
            then {'code': 'HIGH_CANCEL_RATE', 'points': 1.0,
            'text': format('referred orders cancelled at {:.0f}% against the shop''s {:.0f}%',
                           100 * cancel_rate, 100 * shop_cancel_rate)} end,
        -- 1.5: head-count recruiting: invitees who had time to buy never did
        case when settled_invitees >= $min_invitees
                  and settled_invitees_who_bought < $never_buy_share * settled_invitees
            then {'code': 'RECRUITS_NEVER_BUY', 'points': 1.5,
            'text': format('recruits but referred customers never buy: {} of {} invitees '
                           'registered over {} days ago ever paid', settled_invitees_who_bought,
                           settled_invitees, $never_buy_min_days)} end,
        -- 1: invitees registered in a burst
        case when max_invitees_in_burst >= $burst_invitees then {'code': 'RECRUITING_BURST',
            'points': 1.0, 'text': format('{} invitees registered within {} minutes',
                                          max_invitees_in_burst, $burst_minutes)} end,
        -- 1.5: much of the downline flagged or in rings (depth alone is TREE_TOO_DEEP)
        case when downline_suspects >= 2 and downline_suspect_share >= $downline_flagged_share
            then {'code': 'DOWNLINE_FLAGGED', 'points': 1.5,
            'text': format('{:.0f}% of the downline ({} accounts) flagged or in rings',
                           100 * downline_suspect_share, downline_suspects)} end,
        -- 1: tree grown deeper below them than the programme allows
        case when levels_below > l.allowed_levels then {'code': 'TREE_TOO_DEEP', 'points': 1.0,
            'text': format('referral tree {} levels deep below them (programme allows {})',
                           levels_below, l.allowed_levels)} end,
        -- 1: commission above the margin of the goods
        case when commission_margin_share > 1 then {'code': 'COMMISSION_OVER_MARGIN', 'points': 1.0,
            'text': format('their commission is {:.0f}% of the product margin',
                           100 * commission_margin_share)} end,
        -- 1: most of their commission is on flagged orders
        case when commission_at_stake_not_depth > 0
                  and commission_at_stake_not_depth >= $at_stake_share * commission_earned
            then {'code': 'COMMISSION_ON_FLAGGED', 'points': 1.0,
            'text': format('CNY {:.2f} of their CNY {:.2f} commission is on flagged orders',
                           commission_at_stake_not_depth, commission_earned)} end
    ] as all_concerns
    from activity a cross join allowed l
),
keep_concerns as (
    select * exclude (all_concerns),
        list_filter(all_concerns, lambda c: c is not null) as concerns
    from judge_concerns
),
total_points as (
    select * exclude (concerns),
        coalesce(list_sum(list_transform(concerns, lambda c: c.points::double)), 0.0) as risk_points,
        list_transform(concerns, lambda c: c.code) as reason_codes,
        list_transform(concerns, lambda c: c.text) as reasons
    from keep_concerns
),
assign_grade as (
    select *,
        case when risk_points <= $grade_points[1] then 'A'
             when risk_points <= $grade_points[2] then 'B'
             when risk_points <= $grade_points[3] then 'C'
             when risk_points <= $grade_points[4] then 'D'
             else 'E' end as grade,
        $run_id as run_id
    from total_points
)
select * from assign_grade
