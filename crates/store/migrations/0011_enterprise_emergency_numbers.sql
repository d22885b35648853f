-- An enterprise's own emergency numbers (comma-separated, e.g. "911,933" for a US customer
-- on a European platform); NULL follows calls.emergency_numbers.
ALTER TABLE enterprises ADD COLUMN emergency_numbers TEXT;
