-- grain: one row per (account_id, id_type, id_value)
-- Which real-world resources stand behind each account: identifiers seen on its orders
-- and at registration. id_family groups types that are not independent evidence.
with order_keys as (
    select * from intermediate.order_keys
),
accounts as (
    select * from staging.accounts
),
phones as (
    select * from intermediate.norm_phone
),
ips as (
    select * from intermediate.norm_ip
),
unpivot_orders as (
    select buyer_id as account_id, 'device' as id_type, device_key as id_value from order_keys
    union all select buyer_id, 'payer', payer_key from order_keys
    union all select buyer_id, 'ip', ip_key from order_keys
    union all select buyer_id, 'ip_net', ip_net_key from order_keys
    union all select buyer_id, 'phone', phone_key from order_keys
    union all select buyer_id, 'phone_range', phone_prefix7 from order_keys
    union all select buyer_id, 'receiver', receiver_key from order_keys
    union all select buyer_id, 'addr_strict', address_strict_key from order_keys
    union all select buyer_id, 'addr_building', address_building_key from order_keys
),
unpivot_registrations as (
    select a.account_id, 'device' as id_type, og_token(a.device_id) as id_value from accounts a
    union all
    select a.account_id, 'ip', i.ip_norm from accounts a left join ips i on i.ip_raw = a.ip
    union all
    select a.account_id, 'ip_net', i.ip_network from accounts a left join ips i on i.ip_raw = a.ip
    union all
    select a.account_id, 'phone', p.phone_norm from accounts a left join phones p on p.phone_raw = a.phone
    union all
    select a.account_id, 'phone_range', p.phone_prefix7
    from accounts a left join phones p on p.phone_raw = a.phone
),
combine as (
    select account_id, id_type, id_value, count(*) as uses
    from (select * from unpivot_orders union all select * from unpivot_registrations)
    where id_value is not null and account_id is not null
    group by all
),
add_family as (
    select
        *,
        case id_type
            when 'ip' then 'network' when 'ip_net' then 'network'
            when 'phone' then 'phone' when 'receiver' then 'phone' when 'phone_range' then 'phone'
            when 'addr_strict' then 'address' when 'addr_building' then 'address'
            else id_type
        end as id_family
    from combine
)
select * from add_family
