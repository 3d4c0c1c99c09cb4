CREATE SCHEMA IF NOT EXISTS review;
-- review.decisions: every decision an analyst recorded, append-only. Key: decision_id.
CREATE TABLE IF NOT EXISTS review.decisions (
    decision_id        BIGINT PRIMARY KEY,
    decided_at         TIMESTAMP NOT NULL,
    analyst            VARCHAR NOT NULL,
    frequency          VARCHAR NOT NULL,
    mineral            VARCHAR NOT NULL,
    hs_code            VARCHAR NOT NULL,
    hub_iso3           VARCHAR NOT NULL,
    decision           VARCHAR NOT NULL CHECK (decision IN ('confirmed', 'dismissed', 'watching')),
    note               VARCHAR NOT NULL,
    run_id             VARCHAR,
    reviewed_period    DATE,
    was_flagged        BOOLEAN,
    rank_seen          BIGINT,
    route_score_seen   DOUBLE,
    evidence_kg        DOUBLE
);
CREATE VIEW IF NOT EXISTS review.current_decisions AS
SELECT * FROM review.decisions
QUALIFY row_number() OVER (PARTITION BY frequency, mineral, hs_code, hub_iso3 ORDER BY decided_at DESC, decision_id DESC) = 1;
