-- grain: one row per order_id (orders with a tracking number)
-- Fake-shipping signals: one waybill on several orders, a waybill whose shape is rare for
-- its carrier or written by one of its shops alone (learned from the data, not a fixed
-- regex list), and consecutive waybills handed to different buyers of one shop.
with order_keys as (
    select order_id, shop_id, buyer_id, coalesce(carrier, '') as carrier_key,
           upper(trim(tracking_no)) as tracking_no,
           coalesce(address_strict_key, order_id) as ship_to
    from intermediate.order_keys
    where tracking_no is not null and trim(tracking_no) <> ''
),
shape as materialized (  -- read three times: parse each waybill once
    select *,
        try_cast(regexp_extract(tracking_no, '([0-9]{6,})$', 1) as hugeint) as waybill_number,
        regexp_replace(tracking_no, '[0-9]{6,}$', '') as waybill_prefix,
        length(tracking_no) as waybill_length
    from order_keys
),
shared_waybills as (
    -- nearly every waybill is on one order: count buyers and destinations only for the rest
    -- (distinct counts over millions of one-order groups were most of this model's cost)
    select tracking_no from shape group by 1 having count(*) > 1
),
per_shared_waybill as (
    -- one parcel to one address for several orders is a merged shipment, not reuse
    select tracking_no, count(*) as waybill_orders, count(distinct buyer_id) as waybill_buyers,
           count(distinct ship_to) as waybill_destinations
    from shape semi join shared_waybills using (tracking_no)
    group by 1
),
per_form as (
    -- a waybill's shape (digits -> 9, letters -> A, one character at a time) follows from its
    -- prefix and length (the serial is all digits), so it is worked out once per form and
    -- shop: a few thousand rows a night instead of translate() on ~8M waybills (~5 s)
    select carrier_key, waybill_prefix, waybill_length, shop_id, count(*) as form_count,
        translate(waybill_prefix, '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ',
                  '9999999999AAAAAAAAAAAAAAAAAAAAAAAAAA')
            || repeat('9', waybill_length - length(waybill_prefix)) as waybill_shape
    from shape group by 1, 2, 3, 4
),
per_carrier_shape as (
    -- how many of the carrier's shops write each shape: a carrier's numbers come from its own
    -- system, so a shape only one shop writes is that shop's invention, however many orders
    select carrier_key, waybill_shape, sum(form_count) as shape_count,
           count(distinct shop_id) as shape_shops
    from per_form group by 1, 2
),
per_carrier as (
    select carrier_key, sum(form_count) as carrier_count, count(distinct shop_id) as carrier_shops
    from per_form group by 1
),
per_shape as (
    select distinct f.carrier_key, f.waybill_prefix, f.waybill_length, s.shape_count,
           s.shape_shops, c.carrier_count, c.carrier_shops
    from per_form f
    join per_carrier_shape s using (carrier_key, waybill_shape)
    join per_carrier c using (carrier_key)
),
neighbours as (
    select order_id, shop_id, buyer_id, tracking_no, carrier_key, waybill_prefix, waybill_length,
        lag(waybill_number) over w as prev_number,
        lag(buyer_id) over w as prev_buyer,
        waybill_number,
        lead(waybill_number) over w as next_number,
        lead(buyer_id) over w as next_buyer
    from shape
    window w as (partition by shop_id, carrier_key, waybill_prefix order by waybill_number, order_id)
),
judge as (
    select n.order_id, n.shop_id, n.buyer_id, n.tracking_no,
        coalesce(w.waybill_orders, 1) as waybill_orders,
        coalesce(w.waybill_buyers, 1) as waybill_buyers,
        coalesce(w.waybill_destinations, 1) as waybill_destinations,
        p.shape_count::double / p.carrier_count as waybill_shape_share,
        p.carrier_count, p.shape_shops, p.carrier_shops,
        (   (prev_number is not null and waybill_number - prev_number between 1 and 3 and prev_buyer <> buyer_id)
         or (next_number is not null and next_number - waybill_number between 1 and 3 and next_buyer <> buyer_id)
        ) as waybill_sequential
    from neighbours n
    left join per_shared_waybill w using (tracking_no)
    join per_shape p using (carrier_key, waybill_prefix, waybill_length)
)
select * from judge
