-- The tenants whose gate a credit-gate tick must change, at the default
-- threshold of 0, as one plain query: those out of credit that the service has
-- not recorded as engaged, and those with credit that it holds any record of.
-- In the steady state it selects nothing, yet it must look at every balance.
SELECT b.slug, 1 AS suspend
FROM credit_balances AS b
WHERE b.balance <= 0 AND NOT EXISTS (
    SELECT 1 FROM credit_gate_engagements AS e
    WHERE e.slug = b.slug AND e.phase = 'engaged'
)
UNION ALL
SELECT e.slug, 0 AS suspend
FROM credit_gate_engagements AS e
JOIN credit_balances AS b ON b.slug = e.slug
WHERE b.balance > 0
ORDER BY 1
