-- Active users, orders and lifetime value per segment, built on gold_user_stats.
SELECT segment,
       COUNT(*) AS user_count,
       SUM(total_orders) AS total_orders,
       SUM(lifetime_value) AS lifetime_value
FROM {{ ref('user_stats') }}
GROUP BY segment
