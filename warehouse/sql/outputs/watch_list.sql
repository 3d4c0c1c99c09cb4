-- main.watch_list: routes an analyst confirmed or is watching, every period from the reviewed one on,
-- flagged or not.
CREATE OR REPLACE TABLE main.watch_list AS
SELECT d.decision, d.analyst, d.decided_at, d.note, d.reviewed_period, s.frequency, s.mineral, s.hs_code,
       s.hub_iso3, h.name AS hub_name, s.period, s.route_score, s.anomaly_score, s.flagged,
       s.cn_to_hub_kg_window, s.hub_to_us_kg_window, s.us_from_cn_kg_window, s.route_excess_kg
FROM review.current_decisions AS d
JOIN main.route_scores AS s
    ON s.frequency = d.frequency AND s.mineral = d.mineral AND s.hs_code = d.hs_code AND s.hub_iso3 = d.hub_iso3
   AND s.period >= coalesce(d.reviewed_period, DATE '1900-01-01')
LEFT JOIN (SELECT DISTINCT ON (iso3) iso3, name FROM ref.countries ORDER BY iso3, kind <> 'country', m49_code) AS h
    ON h.iso3 = s.hub_iso3
WHERE d.decision IN ('confirmed', 'watching')
ORDER BY s.hub_iso3, s.hs_code, s.frequency, s.mineral, s.period;
