-- A call record says how its enterprise reaches Teams (issue 32): `direct-routing` (its own
-- direct route) or `operator-connect` (the carrier trunk). Earlier records were all Direct
-- Routing.
ALTER TABLE cdrs ADD COLUMN service TEXT NOT NULL DEFAULT 'direct-routing';
