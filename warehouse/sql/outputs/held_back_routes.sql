-- main.held_back_routes: flagged by the model but dismissed by an analyst, with evidence that has not grown enough.
CREATE OR REPLACE TABLE main.held_back_routes AS
SELECT frequency, mineral, hs_code, hs_label, hub_iso3, hub_name, peak_period, peak_route_score, evidence_kg,
       decision_evidence_kg, decision, decided_by AS analyst, decided_at, decision_note AS note,
       printf('dismissed by %s on %s: %s. Evidence now %.1f t beyond the prior run rate, %.1f t when dismissed; '
              'it returns to the flagged list at %.1f t (+%d%%).',
              decided_by, strftime(decided_at, '%Y-%m-%d'), decision_note, coalesce(evidence_kg, 0) / 1000,
              coalesce(decision_evidence_kg, 0) / 1000,
              greatest(coalesce(decision_evidence_kg, 0), 0) * (1 + $regrowth) / 1000, round($regrowth * 100)::INT)
           AS reason
FROM _flag_candidates WHERE held_back
ORDER BY peak_route_score DESC, hub_iso3, hs_code;
