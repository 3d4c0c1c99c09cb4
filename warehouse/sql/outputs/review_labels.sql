-- main.review_labels: analysts' confirmed and dismissed routes as labels, and whether this run's model flags
-- each (before decisions act). Precision on labels = confirmed and flagged / flagged.
CREATE OR REPLACE TABLE main.review_labels AS
SELECT d.frequency, d.mineral, d.hs_code, d.hub_iso3, d.decision, d.decision = 'confirmed' AS label,
       d.analyst, d.decided_at, c.hub_iso3 IS NOT NULL AS model_flags, c.peak_route_score
FROM review.current_decisions AS d
LEFT JOIN _flag_candidates AS c USING (frequency, mineral, hs_code, hub_iso3)
WHERE d.decision IN ('confirmed', 'dismissed')
ORDER BY d.hub_iso3, d.hs_code;
