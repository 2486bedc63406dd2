-- grain: one row per order_id
-- Lockstep buying: how many orders hit the same product within a short window, against
-- that product's own typical rate on that day's volume.
with order_keys as (  -- only what the window sorts on and carries: every column rides the sort
    select order_id, product_id, created_at from intermediate.order_keys
),
daily_volume as (
    -- a day whose orders all carry one timestamp (a date-only export, a constant filler)
    -- has no timing to compare: its bursts stay unknown
    select created_at::date as day, count(*) as day_orders,
           count(distinct created_at) as day_instants
    from order_keys group by 1
),
product_rates as (
    select product_id, count(*) as product_orders,
           count(distinct created_at::date) as product_days
    from order_keys group by 1
),
windowed as (
    select o.*,
        count(*) over (
            partition by o.product_id order by o.created_at
            range between to_minutes($lockstep_minutes) preceding
                      and to_minutes($lockstep_minutes) following
        ) as window_orders
    from order_keys o
),
compare as (
    select w.order_id, w.window_orders, r.product_orders, d.day_instants,
        -- expected orders in a window of this width at this product's average pace,
        -- scaled by how busy the day is (promotion days are busy for everyone)
        greatest(
            r.product_orders::double / (select count(distinct day) from daily_volume)
            * (2 * $lockstep_minutes) / 1440.0
            * d.day_orders / (select avg(day_orders) from daily_volume),
            0.5) as expected_window_orders
    from windowed w
    join product_rates r using (product_id)
    join daily_volume d on d.day = w.created_at::date
),
ratio as (
    select * exclude (day_instants),
        case when day_instants > 1 then window_orders / expected_window_orders end as burst_ratio
    from compare
)
select * from ratio
