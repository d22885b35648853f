-- A disabled user stays provisioned (and licensed) but is unregistered from its PBX and gets
-- no calls: for a user on leave, or while its PBX credentials are being fixed.
ALTER TABLE users ADD COLUMN enabled BIGINT NOT NULL DEFAULT 1;
