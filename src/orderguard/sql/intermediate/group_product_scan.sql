-- grain: one row per (id_type, id_value, product_id) with at least $min_co_buyers buyers
-- Activity aggregation inside resource aggregation: how many of the accounts behind one
-- identifier (a room, a device, a payer...) bought the same product. The scorer compares
-- that count with the product's popularity (binomial surprise), so popular products and
-- big honest crowds do not stand out, while a farm at one address buying one item does.
with account_identifiers as (
    select account_id, id_type, id_value from intermediate.account_identifiers
    where id_type in ('addr_strict', 'addr_building', 'device', 'payer', 'ip', 'phone', 'receiver')
),
groups as (  -- numbered: the products are grouped per group number, not per text
    select id_type, id_value, n_accounts, row_number() over () as group_key
    from intermediate.identifier_stats
    where n_accounts between $min_co_buyers and $max_scan_group and not is_named_hub
),
members as (
    select ai.account_id, g.group_key
    from account_identifiers ai join groups g using (id_type, id_value)
),
bought as materialized (  -- one pass over the orders; popularity is counted from it
    -- one row per (account, product), so counting rows counts accounts below; a product
    -- sold by several shops is named by its first shop
    select buyer_id as account_id, product_id, min(shop_id) as shop_id
    from intermediate.order_keys group by 1, 2
),
product_popularity as (
    select product_id, count(*) as product_buyers from bought group by 1
),
all_buyers as (
    select count(distinct account_id) as n from bought
),
member_products as materialized (
    select m.group_key, m.account_id, b.product_id, b.shop_id
    from members m join bought b using (account_id)
),
co_bought as (
    -- counted first: buyer lists only for the few groups that pass (listing every group's
    -- buyers before the filter was half of this model's time at 10M orders)
    select group_key, product_id from member_products
    group by all having count(*) >= $min_co_buyers
),
co_buy as (
    select g.id_type, g.id_value, g.n_accounts, m.product_id, min(m.shop_id) as shop_id,
           count(*) as co_buyers, list(m.account_id order by m.account_id) as buyer_ids
    from member_products m semi join co_bought using (group_key, product_id)
    join groups g using (group_key)
    group by g.id_type, g.id_value, g.n_accounts, m.product_id
),
add_popularity as (
    select c.*, p.product_buyers, p.product_buyers::double / a.n as product_buyer_rate
    from co_buy c join product_popularity p using (product_id) cross join all_buyers a
)
select * from add_popularity
