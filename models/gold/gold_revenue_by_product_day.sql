-- Revenue per product per day (UTC) of the orders that were not cancelled.
SELECT CAST(o.created_at AS DATE) AS order_date,
       o.product_id,
       p.name AS product_name,
       COUNT(*) AS orders,
       SUM(o.quantity) AS units,
       SUM(o.total_amount) AS revenue
FROM {{ source('orders') }} o
LEFT JOIN {{ source('products') }} p ON p.id = o.product_id
WHERE o.status <> 'cancelled'
GROUP BY CAST(o.created_at AS DATE), o.product_id, p.name
