-- Call detail records, one per call, written when the call ends. Like license_history they are
-- keyed by enterprise name without a foreign key: a carrier bills calls of a customer deleted
-- since. Times are RFC 3339 UTC text (`2026-12-02T07:59:29.180Z`), which sorts as it reads.
CREATE TABLE cdrs (
    call_id              TEXT NOT NULL,
    started_at           TEXT NOT NULL,
    answered_at          TEXT,
    ended_at             TEXT NOT NULL,
    direction            TEXT NOT NULL,
    enterprise           TEXT NOT NULL,
    direct_route         TEXT NOT NULL,
    user_upn             TEXT NOT NULL,
    caller               TEXT NOT NULL,
    callee               TEXT NOT NULL,
    teams_proxy          TEXT,
    failovers            TEXT NOT NULL,
    status               INTEGER NOT NULL,
    result               TEXT NOT NULL,
    reason               TEXT NOT NULL,
    hung_up_by           TEXT,
    codec                TEXT,
    teams_packets_in     BIGINT NOT NULL,
    teams_packets_out    BIGINT NOT NULL,
    teams_bytes_in       BIGINT NOT NULL,
    teams_bytes_out      BIGINT NOT NULL,
    teams_lost           BIGINT NOT NULL,
    teams_jitter         BIGINT NOT NULL,
    teams_auth_failures  BIGINT NOT NULL,
    pbx_packets_in       BIGINT NOT NULL,
    pbx_packets_out      BIGINT NOT NULL,
    pbx_bytes_in         BIGINT NOT NULL,
    pbx_bytes_out        BIGINT NOT NULL,
    pbx_lost             BIGINT NOT NULL,
    pbx_jitter           BIGINT NOT NULL,
    pbx_auth_failures    BIGINT NOT NULL,
    PRIMARY KEY (call_id, started_at)
);
CREATE INDEX cdrs_by_start ON cdrs (started_at);
CREATE INDEX cdrs_by_enterprise ON cdrs (enterprise, started_at);
