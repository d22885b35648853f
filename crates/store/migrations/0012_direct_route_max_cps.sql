-- New calls per second a direct route admits (both directions; emergency calls exempt);
-- NULL: no limit.
ALTER TABLE direct_routes ADD COLUMN max_cps INTEGER;
