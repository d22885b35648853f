-- How a PBX writes numbers. `number_format` is how the called number of a Teams call is sent
-- to the PBX: `e164` keeps the `+`, `digits` drops it. `country_code` (E.164 country calling
-- code, digits only) turns the PBX's national caller numbers into E.164 towards Teams; without
-- it such numbers pass as the PBX sent them.
ALTER TABLE pbxs ADD COLUMN number_format TEXT NOT NULL DEFAULT 'e164';
ALTER TABLE pbxs ADD COLUMN country_code TEXT;
