-- main.flagged_routes: the latest run's flagged routes, ranked by route_score (rank 1 = most suspicious),
-- with the analysts' last decision on each. Routes an analyst dismissed are held back (main.held_back_routes)
-- until their evidence grows by the regrowth setting.
CREATE OR REPLACE TABLE main.flagged_routes AS
SELECT row_number() OVER (ORDER BY peak_route_score DESC, route_excess_kg DESC, hub_iso3, hs_code) AS rank,
       * EXCLUDE (held_back, decision_evidence_kg)
FROM _flag_candidates WHERE NOT held_back
ORDER BY rank;
