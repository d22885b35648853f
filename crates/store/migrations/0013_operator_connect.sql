-- Operator Connect (issue 32). An enterprise is served by Direct Routing (its own derived trunk,
-- as before) or by Operator Connect (the carrier trunk, numbers the operator uploaded).
ALTER TABLE enterprises ADD COLUMN service TEXT NOT NULL DEFAULT 'direct-routing';

-- The OC number inventory: a number or a contiguous range of one OC enterprise, with
-- Microsoft's PstnAssignmentStatus and ActivationState. A UserAssigned row is one number and
-- names its user. Numbers are unique across enterprises (checked, with ranges, on write).
CREATE TABLE oc_numbers (
    id                TEXT PRIMARY KEY,
    enterprise_id     TEXT NOT NULL REFERENCES enterprises (id),
    first_number      TEXT NOT NULL UNIQUE,
    last_number       TEXT NOT NULL,
    assignment        TEXT NOT NULL,
    user_id           TEXT REFERENCES users (id),
    activation        TEXT NOT NULL,
    country           TEXT,
    city              TEXT,
    calling_profile   TEXT,
    emergency_address TEXT,
    acquired_on       TEXT NOT NULL,
    source            TEXT NOT NULL,
    created_at        BIGINT NOT NULL
);
CREATE INDEX oc_numbers_enterprise ON oc_numbers (enterprise_id);
CREATE INDEX oc_numbers_user ON oc_numbers (user_id);

-- Released OC numbers: billing needs their history, so they are never deleted, and like
-- license_history they are kept by enterprise name and outlive the enterprise.
CREATE TABLE oc_numbers_released (
    enterprise   TEXT NOT NULL,
    first_number TEXT NOT NULL,
    last_number  TEXT NOT NULL,
    assignment   TEXT NOT NULL,
    upn          TEXT,
    acquired_on  TEXT NOT NULL,
    released_on  TEXT NOT NULL,
    released_at  BIGINT NOT NULL
);
CREATE INDEX oc_numbers_released_enterprise ON oc_numbers_released (enterprise);
