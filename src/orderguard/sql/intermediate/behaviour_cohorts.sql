-- grain: one row per order_id that belongs to a behaviour cohort
-- Activity aggregation without shared identifiers (a 刷手 network: every account on its own
-- phone, device, payer and address): many accounts buy one product of one shop within a
-- day or two, and each of their orders shows the brushing give-aways of domain.md, not one
-- of them but two independent ones: a 5-star review minutes after delivery, plus payment
-- seconds after ordering, a waybill numbered next to another buyer's, a parcel "delivered"
-- within hours, or an account registered in a batch with another such buyer's hours or days
-- before ordering. Honest crowds on one product (a flash sale, a livestream) pay fast and
-- ship in waybill runs too, but do not review 5 stars minutes after delivery as a body;
-- their new accounts sign up at checkout, not in a batch the day before.
-- Only a cohort of $min_cohort_buyers accounts that is at least $min_cohort_share of the
-- product's orders at that shop over its span is kept: a few coincidences in a big sale
-- are not a farm. The graph stage turns each cohort into a brushing ring.
with quick_reviews as (
    select k.order_id, k.shop_id, k.product_id, k.buyer_id, k.created_at, k.pay_delay_s,
           k.ship_to_deliver_h, a.registered_at
    from intermediate.order_keys k
    left join staging.accounts a on a.account_id = k.buyer_id
    where k.review_rating = 5 and k.review_delay_min between 0 and $instant_review_minutes
      and not k.is_cancel_or_refund
),
registration_neighbours as (
    select *,
        lag(registered_at) over w as prev_registered, lag(buyer_id) over w as prev_buyer,
        lead(registered_at) over w as next_registered, lead(buyer_id) over w as next_buyer
    from quick_reviews
    window w as (partition by shop_id, product_id order by registered_at, buyer_id, order_id)
),
families as (
    select n.order_id, n.shop_id, n.product_id, n.buyer_id, n.created_at,
        coalesce(n.pay_delay_s between 0 and $fast_pay_seconds, false) as fast_pay,
        coalesce(w.waybill_sequential, false) as sequential_waybill,
        coalesce(n.ship_to_deliver_h between 0 and $fast_delivery_hours, false) as fast_delivery,
        -- registered next to another quick reviewer of the product, well before ordering
        coalesce(date_diff('minute', n.registered_at, n.created_at) >= 60 * $batch_lead_hours
            and ((n.prev_buyer <> n.buyer_id and date_diff('minute', n.prev_registered,
                      n.registered_at) <= $batch_registration_minutes)
              or (n.next_buyer <> n.buyer_id and date_diff('minute', n.registered_at,
                      n.next_registered) <= $batch_registration_minutes)), false)
            as batch_registered
    from registration_neighbours n
    left join intermediate.waybill_flags w using (order_id)
),
marked as (
    select * from families
    where fast_pay or sequential_waybill or fast_delivery or batch_registered
),
islands as (  -- a new cohort starts after a quiet gap of $cohort_gap_hours
    select *, sum(starts::int) over (partition by shop_id, product_id order by created_at, order_id)
              as island
    from (
        select *, coalesce(date_diff('minute', lag(created_at) over (
                       partition by shop_id, product_id order by created_at, order_id),
                   created_at) > 60 * $cohort_gap_hours, true) as starts
        from marked
    )
),
cohorts as (
    select shop_id, product_id, island, count(distinct buyer_id) as cohort_buyers,
           count(*) as cohort_orders, min(created_at) as first_at, max(created_at) as last_at
    from islands group by 1, 2, 3
    having count(distinct buyer_id) >= $min_cohort_buyers
),
product_orders as (  -- every order of the product at the shop over the cohort's span
    select c.shop_id, c.product_id, c.island, count(*) as span_orders
    from cohorts c
    join intermediate.order_keys k
      on k.shop_id = c.shop_id and k.product_id = c.product_id
     and k.created_at between c.first_at and c.last_at
    group by 1, 2, 3
),
kept as (
    select c.*, p.span_orders, c.cohort_orders / p.span_orders as cohort_share
    from cohorts c join product_orders p using (shop_id, product_id, island)
    where c.cohort_orders >= $min_cohort_share * p.span_orders
)
select i.order_id, i.shop_id, i.product_id, i.buyer_id, i.created_at,
       i.fast_pay, i.sequential_waybill, i.fast_delivery, i.batch_registered,
       k.shop_id || '|' || k.product_id || '|' || strftime(k.first_at, '%Y%m%d%H%M%S')
           as cohort_key,
       k.cohort_buyers, k.cohort_orders, k.cohort_share,
       date_diff('minute', k.first_at, k.last_at) / 60.0 as cohort_span_hours
from islands i join kept k using (shop_id, product_id, island)
