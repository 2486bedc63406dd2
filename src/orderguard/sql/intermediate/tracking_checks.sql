-- grain: one row per order_id (orders with a tracking number)
-- Fake-shipping signals: one waybill on several orders, a waybill whose shape is rare for
-- its carrier (learned from the data, not a fixed regex list), and consecutive waybills
-- handed to different buyers of one shop.
with order_keys as (
    select order_id, shop_id, buyer_id, carrier, upper(trim(tracking_no)) as tracking_no,
           coalesce(address_strict_key, order_id) as ship_to
    from intermediate.order_keys
    where tracking_no is not null and trim(tracking_no) <> ''
),
shape as materialized (  -- read three times: parse each waybill once
    select *,
        -- digits -> 9, letters -> A, one character at a time
        translate(tracking_no, '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ',
                  '9999999999AAAAAAAAAAAAAAAAAAAAAAAAAA') as waybill_shape,
        try_cast(regexp_extract(tracking_no, '([0-9]{6,})$', 1) as hugeint) as waybill_number,
        regexp_replace(tracking_no, '[0-9]{6,}$', '') as waybill_prefix
    from order_keys
),
per_waybill as (
    -- one parcel to one address for several orders is a merged shipment, not reuse
    select tracking_no, count(*) as waybill_orders, count(distinct buyer_id) as waybill_buyers,
           count(distinct ship_to) as waybill_destinations
    from shape group by 1
),
per_shape as (
    select coalesce(carrier, '') as carrier_key, waybill_shape, count(*) as shape_count,
           sum(count(*)) over (partition by coalesce(carrier, '')) as carrier_count
    from shape group by 1, 2
),
count_reuse as (
    -- grouped counts joined back: distinct counts over windows are slow in DuckDB
    select s.*, w.waybill_orders, w.waybill_buyers, w.waybill_destinations,
           p.shape_count, p.carrier_count
    from shape s
    join per_waybill w using (tracking_no)
    join per_shape p on p.carrier_key = coalesce(s.carrier, '') and p.waybill_shape = s.waybill_shape
),
neighbours as (
    select *,
        lag(waybill_number) over w as prev_number,
        lag(buyer_id) over w as prev_buyer,
        lead(waybill_number) over w as next_number,
        lead(buyer_id) over w as next_buyer
    from count_reuse
    window w as (
        partition by shop_id, coalesce(carrier, ''), waybill_prefix order by waybill_number, order_id
    )
),
judge as (
    select order_id, tracking_no, waybill_orders, waybill_buyers, waybill_destinations,
        shape_count::double / carrier_count as waybill_shape_share,
        carrier_count,
        (   (prev_number is not null and waybill_number - prev_number between 1 and 3 and prev_buyer <> buyer_id)
         or (next_number is not null and next_number - waybill_number between 1 and 3 and next_buyer <> buyer_id)
        ) as waybill_sequential
    from neighbours
)
select * from judge
