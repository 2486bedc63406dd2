-- grain: one row per (account_a, account_b) with account_a < account_b
-- Accounts linked through shared, non-hub identifiers, with rarity-weighted strength and
-- the number of independent identifier families behind the link.
-- Pairs are formed and summed on small integer keys (account, identifier, type bit) and
-- only the final pairs get their names back: at platform scale the pairing is tens of
-- millions of rows, and hashing two strings per row was most of its cost.
with account_identifiers as (
    select * from intermediate.account_identifiers
),
identifier_stats as (
    select * from intermediate.identifier_stats
    where n_accounts between 2 and $max_link_group and rarity_weight > 0
),
type_bits as (  -- one bit per identifier type, so a pair's shared types are a bit-or
    select id_type, (1 << (row_number() over (order by id_type) - 1))::integer as type_bit
    from (select distinct id_type from identifier_stats)
),
family_codes as (
    select id_family, (row_number() over (order by id_family))::utinyint as family_code
    from (select distinct id_family from identifier_stats)
),
linking_identifiers as (
    select s.id_type, s.id_value, s.rarity_weight, s.n_accounts, t.type_bit, f.family_code,
           row_number() over () as identifier_key
    from identifier_stats s
    join type_bits t using (id_type)
    join family_codes f using (id_family)
),
members as (
    select ai.account_id, i.identifier_key, i.type_bit, i.family_code, i.rarity_weight, i.n_accounts
    from account_identifiers ai
    join linking_identifiers i using (id_type, id_value)
),
account_keys as (
    select account_id, row_number() over (order by account_id) as account_key
    from (select distinct account_id from members)
),
keyed_members as (
    select k.account_key, m.identifier_key, m.type_bit, m.family_code, m.rarity_weight, m.n_accounts
    from members m join account_keys k using (account_id)
),
pair_up as (
    select a.account_key as key_a, b.account_key as key_b,
           a.family_code, a.type_bit, a.rarity_weight, a.n_accounts
    from keyed_members a
    join keyed_members b
      on a.identifier_key = b.identifier_key and a.account_key < b.account_key
),
type_masks as (
    select coalesce(bit_or(type_bit) filter (where id_type = 'phone'), 0) as phone_bit,
           coalesce(bit_or(type_bit) filter (where id_type = 'phone_range'), 0) as range_bit
    from type_bits
),
per_family as (
    select key_a, key_b, family_code, max(rarity_weight) as weight, bit_or(type_bit) as type_bits
    from pair_up
    group by all
),
summarise as (
    select key_a, key_b,
           -- rounded: the order a parallel sum adds in moved the last bit of ~100 of 20M
           -- pairs between two builds of one 10M warehouse
           round(sum(weight), 9) as link_weight,
           max(weight) as max_weight,
           count(*) as n_families,
           bit_or(type_bits) as type_bits,
           -- one rare device, payer or phone number can mean one person; a phone range cannot
           max(case when f.id_family in ('device', 'payer') or type_bits & m.phone_bit <> 0
                         or (type_bits & m.range_bit <> 0 and type_bits <> m.range_bit)
                    then weight else 0 end) as strong_weight
    from per_family p
    join family_codes f using (family_code)
    cross join type_masks m
    group by key_a, key_b
),
name_pairs as (
    select a.account_id as account_a, b.account_id as account_b,
           s.link_weight, s.max_weight, s.n_families,
           (select string_agg(id_type, ',' order by id_type) from type_bits t
            where s.type_bits & t.type_bit <> 0) as shared_types,
           s.strong_weight
    from summarise s
    join account_keys a on a.account_key = s.key_a
    join account_keys b on b.account_key = s.key_b
)
select * from name_pairs
