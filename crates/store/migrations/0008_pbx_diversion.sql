-- Whether a PBX wants call history as a Diversion header (RFC 5806): for calls from Teams,
-- whose History-Info (RFC 7044) is mapped to it (RFC 7544). Off by default: most PBXs read
-- neither, and some reject what they do not expect.
ALTER TABLE pbxs ADD COLUMN diversion BIGINT NOT NULL DEFAULT 0;
