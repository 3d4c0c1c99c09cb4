-- Grain: one row per accepted record of a national-source file. Key: (file_sha256, source_row, part).
-- Append-only; figures as published (currency, scale, unit, year-to-date), converted in staging.
CREATE TABLE IF NOT EXISTS raw.national_records (
    batch_id            VARCHAR NOT NULL,
    source              VARCHAR NOT NULL,
    source_file         VARCHAR NOT NULL,
    file_sha256         VARCHAR NOT NULL,
    source_row          BIGINT  NOT NULL,
    part                INTEGER NOT NULL,
    loaded_at           TIMESTAMP NOT NULL,
    frequency           VARCHAR NOT NULL,
    period              DATE    NOT NULL,
    is_ytd              BOOLEAN NOT NULL,
    reporter_iso3       VARCHAR NOT NULL,
    partner_label       VARCHAR NOT NULL,
    partner_code_native VARCHAR,
    partner_iso3        VARCHAR,
    partner_kind        VARCHAR NOT NULL,
    flow                VARCHAR NOT NULL,
    commodity_code      VARCHAR NOT NULL,
    code_system         VARCHAR NOT NULL,
    hs_revision         VARCHAR,
    value               DOUBLE  NOT NULL,
    currency            VARCHAR NOT NULL,
    value_scale         DOUBLE  NOT NULL,
    value_basis         VARCHAR NOT NULL,
    value_measure       VARCHAR,
    qty                 DOUBLE,
    qty_unit            VARCHAR
);

-- Grain: one row per (period, currency) per rate file load. Key: (file_sha256, source_row).
CREATE TABLE IF NOT EXISTS raw.fx_rates (
    batch_id       VARCHAR NOT NULL,
    source_file    VARCHAR NOT NULL,
    file_sha256    VARCHAR NOT NULL,
    source_row     BIGINT  NOT NULL,
    loaded_at      TIMESTAMP NOT NULL,
    period         DATE    NOT NULL,
    currency       VARCHAR NOT NULL,
    units_per_usd  DOUBLE  NOT NULL,
    rate_source    VARCHAR NOT NULL
);

-- A source row can hold several records (a user table with a world part and a China part).
ALTER TABLE raw.rejects ADD COLUMN IF NOT EXISTS part INTEGER DEFAULT 1;
