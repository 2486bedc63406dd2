-- grain: one row per (account_id, id_type, id_value)
-- Which real-world resources stand behind each account: identifiers seen on its orders
-- and at registration. The family a type belongs to is named in identifier_stats, per
-- identifier: as a column here it was 25M more strings to write at 10M orders (~2 s).
-- Each type is counted on its own: types never share a row, and nine aggregates on
-- (account, value) cost half of one over every (account, type, value) at 10M orders.
with order_keys as not materialized (  -- read nine times: nine narrow scans beat one copy
    select * from intermediate.order_keys
),
registrations as materialized (  -- read by five types: join the lookups once
    select a.account_id, og_token(a.device_id) as device, i.ip_norm as ip,
           i.ip_network as ip_net, p.phone_norm as phone, p.phone_prefix7 as phone_range
    from staging.accounts a
    left join intermediate.norm_ip i on i.ip_raw = a.ip
    left join intermediate.norm_phone p on p.phone_raw = a.phone
),
device as (
    select account_id, id_value, count(*) as uses
    from (select buyer_id as account_id, device_key as id_value from order_keys
          union all select account_id, device from registrations)
    where account_id is not null and id_value is not null
    group by account_id, id_value
),
payer as (
    select buyer_id as account_id, payer_key as id_value, count(*) as uses
    from order_keys
    where buyer_id is not null and payer_key is not null
    group by buyer_id, payer_key
),
ip as (
    select account_id, id_value, count(*) as uses
    from (select buyer_id as account_id, ip_key as id_value from order_keys
          union all select account_id, ip from registrations)
    where account_id is not null and id_value is not null
    group by account_id, id_value
),
ip_net as (
    select account_id, id_value, count(*) as uses
    from (select buyer_id as account_id, ip_net_key as id_value from order_keys
          union all select account_id, ip_net from registrations)
    where account_id is not null and id_value is not null
    group by account_id, id_value
),
phone as (
    select account_id, id_value, count(*) as uses
    from (select buyer_id as account_id, phone_key as id_value from order_keys
          union all select account_id, phone from registrations)
    where account_id is not null and id_value is not null
    group by account_id, id_value
),
phone_range as (
    select account_id, id_value, count(*) as uses
    from (select buyer_id as account_id, phone_prefix7 as id_value from order_keys
          union all select account_id, phone_range from registrations)
    where account_id is not null and id_value is not null
    group by account_id, id_value
),
receiver as (
    select buyer_id as account_id, receiver_key as id_value, count(*) as uses
    from order_keys
    where buyer_id is not null and receiver_key is not null
    group by buyer_id, receiver_key
),
addr_strict as (
    select buyer_id as account_id, address_strict_key as id_value, count(*) as uses
    from order_keys
    where buyer_id is not null and address_strict_key is not null
    group by buyer_id, address_strict_key
),
addr_building as (
    select buyer_id as account_id, address_building_key as id_value, count(*) as uses
    from order_keys
    where buyer_id is not null and address_building_key is not null
    group by buyer_id, address_building_key
),
combine as (
    select account_id, 'device' as id_type, id_value, uses from device
    union all select account_id, 'payer', id_value, uses from payer
    union all select account_id, 'ip', id_value, uses from ip
    union all select account_id, 'ip_net', id_value, uses from ip_net
    union all select account_id, 'phone', id_value, uses from phone
    union all select account_id, 'phone_range', id_value, uses from phone_range
    union all select account_id, 'receiver', id_value, uses from receiver
    union all select account_id, 'addr_strict', id_value, uses from addr_strict
    union all select account_id, 'addr_building', id_value, uses from addr_building
)
select * from combine
