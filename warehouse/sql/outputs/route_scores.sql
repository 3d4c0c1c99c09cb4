-- main.route_scores: the view analysts query: what scoring adds to a route-period (main.route_score_values),
-- then the route-period's features from features.route_features (~110 columns a table would store twice).
CREATE OR REPLACE VIEW main.route_scores AS
SELECT s.*, f.* EXCLUDE (frequency, mineral, hs_code, hub_iso3, period, volume_weight, rule_flag, has_history,
                         volume_floor_kg, volume_floor_usd)
FROM main.route_score_values AS s
JOIN features.route_features AS f USING (frequency, mineral, hs_code, hub_iso3, period);
