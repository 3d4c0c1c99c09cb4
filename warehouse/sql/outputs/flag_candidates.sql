-- The routes this run's model flags, before analysts' decisions act: one row per
-- (frequency, mineral, hs_code, hub_iso3) with at least one flagged period. The numbers are those of the route's
-- peak period (its flagged period with the highest route_score); kg and USD. evidence_kg: the route's largest
-- excess over its prior run rate in a flagged period (what a dismissal is measured against).
CREATE OR REPLACE TEMP TABLE _flag_candidates AS
WITH flagged AS (SELECT * FROM main.route_scores WHERE flagged),
peak AS (
    SELECT * FROM flagged
    QUALIFY row_number() OVER (PARTITION BY frequency, mineral, hs_code, hub_iso3
                               ORDER BY route_score DESC, period DESC) = 1
), span AS (
    SELECT frequency, mineral, hs_code, hub_iso3, min(period) AS first_flagged_period,
           max(period) AS last_flagged_period, count(*) AS periods_flagged, max(route_excess_kg) AS evidence_kg
    FROM flagged GROUP BY ALL
)
SELECT
    $run_id::VARCHAR AS run_id, p.model_id, p.frequency, p.mineral, p.hs_code, c.label AS hs_label, p.hub_iso3, h.name AS hub_name,
    s.first_flagged_period, s.last_flagged_period, s.periods_flagged,
    p.period AS peak_period, p.route_score AS peak_route_score, p.anomaly_score AS peak_score, p.score_percentile,
    p.score_threshold, p.volume_weight, s.evidence_kg,
    p.cn_to_hub_kg_window, p.cn_to_hub_kg_prior, p.hub_to_us_kg_window, p.hub_to_us_kg_prior,
    p.us_from_cn_kg_window, p.us_from_cn_kg_prior, p.cn_to_hub_usd_window, p.hub_to_us_usd_window,
    p.cn_to_hub_kg_spike_ratio, p.hub_to_us_kg_spike_ratio, p.route_excess_kg, p.reroute_ceiling_kg,
    p.reroute_ceiling_share, p.three_leg_share_test, p.three_leg_excess_kg, p.co_movement, p.co_movement_lag,
    p.signal_persistence, p.pass_through_kg, p.hub_share_of_us_imports_change, p.cn_direct_share_of_us_imports_change,
    p.unit_value_vs_world, p.world_unit_value_change, p.floor_multiple, p.hub_to_us_peak_share, p.china_value_cover,
    p.rule_flag,
    p.new_route, p.top_features,
    d.decision, d.analyst AS decided_by, d.decided_at, d.note AS decision_note, d.evidence_kg AS decision_evidence_kg,
    coalesce(d.decision = 'dismissed'
             AND coalesce(s.evidence_kg, 0) < greatest(coalesce(d.evidence_kg, 0), 0) * (1 + $regrowth), false)
        AS held_back
FROM peak AS p
JOIN span AS s USING (frequency, mineral, hs_code, hub_iso3)
LEFT JOIN (SELECT DISTINCT ON (iso3) iso3, name FROM ref.countries ORDER BY iso3, kind <> 'country', m49_code) AS h
    ON h.iso3 = p.hub_iso3
LEFT JOIN ref.catalogue_codes AS c ON starts_with(p.hs_code, c.code)
LEFT JOIN review.current_decisions AS d
    ON d.frequency = p.frequency AND d.mineral = p.mineral AND d.hs_code = p.hs_code AND d.hub_iso3 = p.hub_iso3
QUALIFY row_number() OVER (PARTITION BY p.frequency, p.mineral, p.hs_code, p.hub_iso3 ORDER BY length(c.code) DESC NULLS LAST) = 1;
