-- grain: one row per (account_a, account_b) with account_a < account_b
-- Accounts linked through shared, non-hub identifiers, with rarity-weighted strength and
-- the number of independent identifier families behind the link.
with account_identifiers as (
    select * from intermediate.account_identifiers
),
identifier_stats as (
    select * from intermediate.identifier_stats
    where n_accounts between 2 and $max_link_group and rarity_weight > 0
),
members as (
    select ai.account_id, ai.id_type, ai.id_family, ai.id_value, s.rarity_weight, s.n_accounts
    from account_identifiers ai
    join identifier_stats s using (id_type, id_value)
),
pair_up as (
    select a.account_id as account_a, b.account_id as account_b,
           a.id_type, a.id_family, a.rarity_weight, a.n_accounts
    from members a
    join members b
      on a.id_type = b.id_type and a.id_value = b.id_value and a.account_id < b.account_id
),
per_family as (
    select account_a, account_b, id_family,
           max(rarity_weight) as weight, min(n_accounts) as smallest_group,
           string_agg(distinct id_type, ',' order by id_type) as id_types
    from pair_up
    group by all
),
summarise as (
    select account_a, account_b,
           sum(weight) as link_weight,
           max(weight) as max_weight,
           count(*) as n_families,
           string_agg(id_types, ',' order by id_types) as shared_types,
           -- one rare device, payer or phone number can mean one person; a phone range cannot
           max(case when id_family in ('device', 'payer') or id_types like '%phone%'
                    and id_types <> 'phone_range' then weight else 0 end) as strong_weight
    from per_family
    group by all
)
select * from summarise
