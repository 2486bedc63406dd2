-- grain: one row per account_id judged fake or colluding
-- Ring members (any kind but fake shipping, whose members are shops) and accounts whose
-- orders reached the flag threshold.
with order_scores as (
    select * from intermediate.order_scores
),
members as (
    select m.account_id, m.role, r.ring_id, r.kind, r.strength,
           row_number() over (partition by m.account_id order by r.strength desc, r.ring_id) as pick
    from intermediate.ring_members m join intermediate.rings r using (ring_id)
),
by_orders as (
    -- only evidence against the buyer counts: an honest customer of a fake-shipping shop
    -- is not a suspect account
    select buyer_id as account_id, max(buyer_score) as max_order_score,
           count(*) filter (where risk_level <> 'low') as flagged_orders,
           list_sort(list_distinct(flatten(list(reason_codes)
               filter (where risk_level <> 'low')))) as reasons
    from order_scores group by 1
),
combine as (
    select coalesce(m.account_id, b.account_id) as account_id,
        greatest(coalesce(b.max_order_score, 0),
                 case when m.account_id is not null then $ring_member_score else 0 end) as score,
        m.ring_id, m.kind as ring_kind, m.role as ring_role,
        coalesce(b.flagged_orders, 0) as flagged_orders,
        coalesce(b.reasons, []) as reasons
    from (select * from members where pick = 1) m
    full join by_orders b using (account_id)
),
cleared as (
    -- accounts support allow-listed (until their entry expires) are not listed
    select entity_value as account_id from ops.allowlist
    where entity_type = 'account'
      and expires_at > (select max(created_at) from staging.orders)
),
keep as (
    select *, $run_id as run_id from combine
    where (ring_id is not null or score >= $flag_threshold)
      and account_id not in (select account_id from cleared)
)
select * from keep
