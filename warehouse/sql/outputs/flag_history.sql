-- main.flag_history: every run's flagged routes, kept (append-only by run). Key: (run_id, frequency, mineral, hs_code, hub_iso3).
-- peak_score is the peak period's anomaly score, peak_route_score its route score (the ranking score).
CREATE TABLE IF NOT EXISTS main.flag_history (
    run_id VARCHAR NOT NULL, frequency VARCHAR NOT NULL, mineral VARCHAR NOT NULL, hs_code VARCHAR NOT NULL,
    hub_iso3 VARCHAR NOT NULL, rank BIGINT, peak_period DATE, peak_score DOUBLE, peak_route_score DOUBLE
);
ALTER TABLE main.flag_history ADD COLUMN IF NOT EXISTS peak_route_score DOUBLE;
DELETE FROM main.flag_history WHERE run_id = $run_id;
INSERT INTO main.flag_history BY NAME
SELECT $run_id AS run_id, frequency, mineral, hs_code, hub_iso3, rank, peak_period, peak_score, peak_route_score
FROM main.flagged_routes;
