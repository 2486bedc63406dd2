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
linking_identifiers as (
    select s.id_type, s.id_value, s.rarity_weight, t.type_bit,
           -- fixed codes: summarise takes each family's strongest link by its code
           (case s.id_family when 'device' then 1 when 'payer' then 2
               when 'network' then 3 when 'phone' then 4 when 'address' then 5
               else error('account_pairs: no code for identifier family ' || s.id_family)
            end)::utinyint as family_code,
           row_number() over () as identifier_key
    from identifier_stats s
    join type_bits t using (id_type)
),
members as (
    select ai.account_id, i.identifier_key, i.type_bit, i.family_code, i.rarity_weight
    from account_identifiers ai
    join linking_identifiers i using (id_type, id_value)
),
account_keys as (
    select account_id, row_number() over (order by account_id) as account_key
    from (select distinct account_id from members)
),
keyed_members as (
    select k.account_key, m.identifier_key, m.type_bit, m.family_code, m.rarity_weight
    from members m join account_keys k using (account_id)
),
pair_up as (
    select a.account_key as key_a, b.account_key as key_b,
           a.family_code, a.type_bit, a.rarity_weight
    from keyed_members a
    join keyed_members b
      on a.identifier_key = b.identifier_key and a.account_key < b.account_key
),
type_masks as (
    select coalesce(bit_or(type_bit) filter (where id_type = 'phone'), 0) as phone_bit,
           coalesce(bit_or(type_bit) filter (where id_type = 'phone_range'), 0) as range_bit
    from type_bits
),
summarise as (
    -- each family's strongest shared identifier (a family counts once however many of its
    -- identifiers two accounts share), in one grouping of the pairs: grouping by family
    -- first and then by pair was two hash aggregates over 20M+ rows (10M orders: the model
    -- 14.4/13.8 -> 12.6/12.7 s, every row the same)
    select key_a, key_b,
           max(rarity_weight) filter (where family_code = 1) as w_device,
           max(rarity_weight) filter (where family_code = 2) as w_payer,
           max(rarity_weight) filter (where family_code = 3) as w_network,
           max(rarity_weight) filter (where family_code = 4) as w_phone,
           max(rarity_weight) filter (where family_code = 5) as w_address,
           bit_or(type_bit) filter (where family_code = 4) as phone_family_bits,
           bit_or(type_bit) as type_bits
    from pair_up
    group by key_a, key_b
),
strengths as (
    select key_a, key_b, type_bits,
           -- rounded as when a parallel sum's order moved the last bit between builds
           -- an address and an IP that many share are one fact, the place: an office floor
           -- and its network are not two independent signs that colleagues are one person
           -- (a home's address and broadband, shared by a few, stay two)
           round(coalesce(w_device, 0) + coalesce(w_payer, 0) + coalesce(w_phone, 0)
                 + case when w_network < $strong_link_min and w_address < $strong_link_min
                        then greatest(w_network, w_address)
                        else coalesce(w_network, 0) + coalesce(w_address, 0) end, 9) as link_weight,
           greatest(w_device, w_payer, w_network, w_phone, w_address) as max_weight,
           ((w_device is not null)::int + (w_payer is not null)::int + (w_phone is not null)::int
               + case when w_network < $strong_link_min and w_address < $strong_link_min then 1
                      else (w_network is not null)::int + (w_address is not null)::int end
           )::bigint as n_families,
           -- one rare device, payer or phone number can mean one person; a phone range cannot
           coalesce(greatest(w_device, w_payer,
                    case when phone_family_bits & m.phone_bit <> 0
                              or (phone_family_bits & m.range_bit <> 0
                                  and phone_family_bits <> m.range_bit)
                         then w_phone end), 0) as strong_weight
    from summarise cross join type_masks m
),
name_pairs as (
    select a.account_id as account_a, b.account_id as account_b,
           s.link_weight, s.max_weight, s.n_families,
           (select string_agg(id_type, ',' order by id_type) from type_bits t
            where s.type_bits & t.type_bit <> 0) as shared_types,
           s.strong_weight
    from strengths s
    join account_keys a on a.account_key = s.key_a
    join account_keys b on b.account_key = s.key_b
)
select * from name_pairs
