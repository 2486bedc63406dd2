-- grain: one row per (id_type, id_value) seen on two or more accounts
-- How common each shared identifier is. Rarity, not a hard-coded list, decides how much a
-- shared identifier links: a CGNAT IP or a campus parcel station is shared by hundreds.
-- An identifier of one account links nothing; its readers treat a missing row as "1 account"
-- (at 10M orders most of the 13M identifiers are such singletons).
with account_identifiers as (
    select * from intermediate.account_identifiers
),
hub_addresses as (
    select distinct address_strict_key as id_value, 'addr_strict' as id_type
    from intermediate.order_keys where address_is_hub and address_strict_key is not null
    union
    select distinct address_building_key, 'addr_building'
    from intermediate.order_keys where address_is_hub and address_building_key is not null
),
count_accounts as (
    -- account_identifiers has one row per (account, type, value): count(*) counts accounts
    select id_type, id_value,
           count(*) as n_accounts, sum(uses) as n_uses
    from account_identifiers
    group by id_type, id_value
    having count(*) >= 2
),
weigh as (
    select
        c.id_type,
        -- types of one family are not independent evidence (an IP and its network)
        case c.id_type
            when 'ip' then 'network' when 'ip_net' then 'network'
            when 'phone' then 'phone' when 'receiver' then 'phone' when 'phone_range' then 'phone'
            when 'addr_strict' then 'address' when 'addr_building' then 'address'
            else c.id_type
        end as id_family,
        c.id_value, c.n_accounts, c.n_uses,
        (h.id_value is not null) as is_named_hub,
        -- 1 for an identifier of two accounts, falling towards 0 as it gets common
        case when h.id_value is not null or c.n_accounts > $hub_accounts then 0.0
             else 1.0 / log2(c.n_accounts) end as rarity_weight
    from count_accounts c
    left join hub_addresses h on h.id_type = c.id_type and h.id_value = c.id_value
)
select * from weigh
