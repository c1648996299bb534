-- The reference's user segments: order count and lifetime value of each active user.
SELECT u.id AS user_id,
       u.name,
       COUNT(o.id) AS total_orders,
       COALESCE(SUM(o.total_amount), 0) AS lifetime_value,
       CASE WHEN SUM(o.total_amount) > 10000 THEN 'VIP'
            WHEN SUM(o.total_amount) > 1000 THEN 'Gold'
            ELSE 'Silver' END AS segment
FROM {{ source('users') }} u
LEFT JOIN {{ source('orders') }} o ON u.id = o.user_id
WHERE u.is_active = true
GROUP BY u.id, u.name
