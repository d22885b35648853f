-- Whether a call was an emergency call (a call from Teams to calls.emergency_numbers): such
-- calls pass the direct route's limit, and carriers report them apart.
ALTER TABLE cdrs ADD COLUMN emergency BIGINT NOT NULL DEFAULT 0;
