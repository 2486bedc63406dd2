-- grain: one row per (shop_id, level): the commission rate the programme promises
-- From programme.toml (passed in as parallel lists; shop '*' is the default programme).
-- A shop with its own table uses only its own rates; every other shop, and the row for
-- shop_id 'ALL' (the programme as a whole), uses the default.
with orders as (
    select distinct shop_id from staging.orders where shop_id is not null
),
products as (
    select distinct shop_id from staging.products where shop_id is not null
),
read_config as (
    select unnest($rate_shop_ids) as config_shop, unnest($rate_levels) as level,
           unnest($rate_values) as rate, unnest($rate_allowed_levels) as allowed_levels
),
list_shops as (
    select shop_id from orders union select shop_id from products union select 'ALL'
),
pick_programme as (
    select s.shop_id,
        case when s.shop_id in (select config_shop from read_config) then s.shop_id
             else '*' end as config_shop
    from list_shops s
),
assign_rates as (
    select p.shop_id, c.level::integer as level, c.rate::double as configured_rate,
        c.allowed_levels::integer as allowed_levels,
        case when p.config_shop = '*' then 'default' else 'shop' end as rate_source
    from pick_programme p join read_config c using (config_shop)
)
select * from assign_rates
