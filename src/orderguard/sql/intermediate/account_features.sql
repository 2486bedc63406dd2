-- grain: one row per account_id (every staged account and every buyer)
-- Behaviour and resource-sharing aggregates per account, for rules and the forest.
with accounts as (
    select account_id, registered_at, inviter_id, coalesce(is_distributor, false) as is_distributor
    from staging.accounts
),
order_keys as (
    select * from intermediate.order_keys
),
identifiers as (
    select ai.account_id, ai.id_type, s.n_accounts, s.rarity_weight
    from intermediate.account_identifiers ai
    join intermediate.identifier_stats s using (id_type, id_value)
),
orders_per_account as (
    select o.buyer_id as account_id,
        count(*) as n_orders, count(distinct o.shop_id) as n_shops, sum(o.amount) as gmv,
        avg(o.is_cancel_or_refund::int) as cancel_refund_share,
        avg(o.quantity) as avg_quantity,
        avg((o.pay_delay_s <= 10)::int) as fast_pay_share,
        avg((o.ship_to_deliver_h < 12)::int) as fast_delivery_share,
        avg((o.review_delay_min <= 30 and o.review_rating = 5)::int) as instant_5star_share,
        avg(o.at_exact_list_price::int) as exact_price_share,
        min(o.account_age_days) as age_at_first_order_days
    from order_keys o
    group by 1
),
buyer_products as materialized (
    -- one row per (buyer, product): products per buyer, buyers per product and each buyer's
    -- favourite all come from this one grouping of the window's orders
    select buyer_id as account_id, product_id, count(*) as orders
    from order_keys group by 1, 2
),
product_rates as (
    select product_id,
           count(account_id) / (select count(*) from orders_per_account
                                where account_id is not null) as buyer_rate
    from buyer_products group by 1
),
top_product as (
    -- the account's favourite product and how common it is among all buyers: concentration
    -- on a product nearly everyone buys (a one-product shop) is no evidence
    select account_id, count(product_id) as n_products, max(share) as top_product_share,
           min(buyer_rate) filter (where is_top) as top_product_buyer_rate
    from (
        select b.*, p.buyer_rate, b.share = max(b.share) over (partition by b.account_id) as is_top
        from (
            select account_id, product_id,
                   orders / sum(orders) over (partition by account_id) as share
            from buyer_products) b
        join product_rates p using (product_id))
    group by 1
),
sharing as (
    select account_id,
        max(case when id_type = 'device' then n_accounts end) as device_accounts,
        max(case when id_type = 'payer' then n_accounts end) as payer_accounts,
        max(case when id_type = 'phone' then n_accounts end) as phone_accounts,
        max(case when id_type = 'ip' then n_accounts end) as ip_accounts,
        max(case when id_type = 'addr_strict' then n_accounts end) as address_accounts,
        -- rounded: the order a parallel sum adds in moved the last bit from run to run
        round(sum(case when n_accounts > 1 then rarity_weight else 0 end), 9) as shared_rarity_sum
    from identifiers group by 1
),
ordered_at_once as (
    -- accounts that placed an order within a minute of registering
    select distinct o.buyer_id as account_id
    from order_keys o
    where o.account_age_s between 0 and $instant_order_seconds
),
strong_ids as (
    select ai.account_id, ai.id_type, ai.id_value
    from intermediate.account_identifiers ai
    join intermediate.identifier_stats s using (id_type, id_value)
    where ai.id_type in ('device', 'payer', 'phone') and s.n_accounts between 2 and $hub_accounts
),
at_once_per_id as (
    select id_type, id_value, count(distinct account_id) as at_once_accounts
    from strong_ids join ordered_at_once using (account_id)
    group by 1, 2
),
at_once_siblings as (
    -- new accounts ordering at once behind one device, payer or phone: a batch of fresh
    -- accounts, not one customer signing up at checkout
    select s.account_id,
           max(p.at_once_accounts - (x.account_id is not null)::int) as instant_siblings
    from strong_ids s
    join at_once_per_id p using (id_type, id_value)
    left join ordered_at_once x on x.account_id = s.account_id
    group by 1
),
count_invite_siblings as (
    select account_id,
        count(*) over (partition by inviter_id order by registered_at
            range between interval 10 minutes preceding and interval 10 minutes following) - 1
            as within_10min,
        count(*) over (partition by inviter_id order by registered_at
            range between interval 12 hours preceding and interval 12 hours following) - 1
            as within_12h
    from accounts where inviter_id is not null
),
invite_bursts as (
    -- a batch of alts is a spike on its inviter's quiet day; a viral distributor's
    -- livestream lifts the whole day (2,500 fans: half of them had 3 siblings within
    -- 10 minutes at 250k accounts). The siblings count only when the 20 minutes hold 3x
    -- what the inviter's day would put there at its own rate (a quiet inviter's 2 count).
    select account_id,
        case when within_10min >= 3 * within_12h * 20.0 / 1440.0
             then within_10min else 0 end as siblings_within_10min
    from count_invite_siblings
),
assemble as (
    select a.account_id, a.registered_at, a.inviter_id, a.is_distributor,
        coalesce(o.n_orders, 0) as n_orders, o.n_shops, tp.n_products, o.gmv,
        o.cancel_refund_share, o.avg_quantity, o.fast_pay_share, o.fast_delivery_share,
        o.instant_5star_share, o.exact_price_share, o.age_at_first_order_days,
        tp.top_product_share, tp.top_product_buyer_rate,
        coalesce(s.device_accounts, 1) as device_accounts,
        coalesce(s.payer_accounts, 1) as payer_accounts,
        coalesce(s.phone_accounts, 1) as phone_accounts,
        coalesce(s.ip_accounts, 1) as ip_accounts,
        coalesce(s.address_accounts, 1) as address_accounts,
        coalesce(s.shared_rarity_sum, 0) as shared_rarity_sum,
        coalesce(ib.siblings_within_10min, 0) as siblings_within_10min,
        coalesce(ao.instant_siblings, 0) as instant_siblings
    from accounts a
    left join orders_per_account o using (account_id)
    left join top_product tp using (account_id)
    left join sharing s using (account_id)
    left join invite_bursts ib using (account_id)
    left join at_once_siblings ao using (account_id)
)
select * from assemble
