-- A call record says how its enterprise reaches Teams (issue 32): `direct-routing` (its own
-- direct route) or `operator-connect` (the carrier trunk). Earlier records were all Direct
-- Routing.
ALTER TABLE cdrs ADD COLUMN service TEXT NOT NULL DEFAULT 'direct-routing';

-- An OC number is checked against every enterprise's service numbers (issue 32: one number,
-- one use) by first number.
CREATE INDEX service_numbers_first ON service_numbers (first_number);
