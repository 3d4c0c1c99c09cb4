CREATE SCHEMA IF NOT EXISTS raw;
CREATE SCHEMA IF NOT EXISTS ref;
CREATE SCHEMA IF NOT EXISTS staging;
CREATE SCHEMA IF NOT EXISTS intermediate;
CREATE SCHEMA IF NOT EXISTS marts;
CREATE SCHEMA IF NOT EXISTS features;

-- Grain: one row per file load. Key: file_sha256 (a file with the same content is never loaded twice).
CREATE TABLE IF NOT EXISTS raw.loads (
    batch_id       VARCHAR NOT NULL,
    source_file    VARCHAR NOT NULL,
    file_sha256    VARCHAR NOT NULL PRIMARY KEY,
    file_format    VARCHAR NOT NULL,
    rows_read      BIGINT  NOT NULL,
    rows_loaded    BIGINT  NOT NULL,
    rows_rejected  BIGINT  NOT NULL,
    notes          VARCHAR,
    loaded_at      TIMESTAMP NOT NULL
);

-- Grain: one row per accepted record of a UN Comtrade file. Key: (file_sha256, source_row). Append-only.
CREATE TABLE IF NOT EXISTS raw.comtrade_records (
    batch_id              VARCHAR NOT NULL,
    source_file           VARCHAR NOT NULL,
    file_sha256           VARCHAR NOT NULL,
    source_row            BIGINT  NOT NULL,
    loaded_at             TIMESTAMP NOT NULL,
    freq_code             VARCHAR NOT NULL,
    period                DATE    NOT NULL,
    period_from           VARCHAR NOT NULL,
    reporter_code         INTEGER NOT NULL,
    flow_code             VARCHAR NOT NULL,
    partner_code          INTEGER NOT NULL,
    partner2_code         INTEGER,
    cmd_code              VARCHAR NOT NULL,
    customs_code          VARCHAR,
    mot_code              INTEGER,
    qty_unit_code         INTEGER,
    qty                   DOUBLE,
    net_wgt               DOUBLE,
    cif_value             DOUBLE,
    fob_value             DOUBLE,
    primary_value         DOUBLE,
    is_aggregate          BOOLEAN,
    has_breakdown_columns BOOLEAN NOT NULL
);

-- Grain: one row per record that could not be loaded, with the first problem found. Key: (file_sha256, source_row).
CREATE TABLE IF NOT EXISTS raw.rejects (
    batch_id     VARCHAR NOT NULL,
    source_file  VARCHAR NOT NULL,
    file_sha256  VARCHAR NOT NULL,
    source_row   BIGINT  NOT NULL,
    column_name  VARCHAR NOT NULL,
    bad_value    VARCHAR,
    reason       VARCHAR NOT NULL,
    record       JSON,
    rejected_at  TIMESTAMP NOT NULL
);

-- Grain: one row per pipeline run. Key: run_id.
CREATE TABLE IF NOT EXISTS main.runs (
    run_id        VARCHAR PRIMARY KEY,
    started_at    TIMESTAMP NOT NULL,
    finished_at   TIMESTAMP,
    status        VARCHAR NOT NULL,
    error         VARCHAR,
    data_dir      VARCHAR,
    input_files   JSON,
    parameters    JSON,
    code_version  VARCHAR,
    layer_counts  JSON
);
