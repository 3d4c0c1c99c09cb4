CREATE SCHEMA IF NOT EXISTS models;
CREATE TABLE IF NOT EXISTS models.registry (
    model_id VARCHAR PRIMARY KEY,
    frequency VARCHAR NOT NULL,
    mineral VARCHAR NOT NULL,
    created_at TIMESTAMP NOT NULL,
    run_id VARCHAR NOT NULL,
    code_version VARCHAR,
    training_first_period DATE,
    training_last_period DATE,
    n_train BIGINT,
    n_routes BIGINT,
    training_sha256 VARCHAR,
    card JSON,
    artifact BLOB,
    last_fitted_at TIMESTAMP,
    artifact_format VARCHAR
);
CREATE TABLE IF NOT EXISTS models.drift (
    run_id VARCHAR NOT NULL,
    model_id VARCHAR NOT NULL,
    feature VARCHAR NOT NULL,
    psi DOUBLE,
    new_rows BIGINT,
    first_new_period DATE,
    last_new_period DATE,
    drifted BOOLEAN
);
