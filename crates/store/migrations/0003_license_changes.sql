-- When the direct route's Microsoft user last had its licenses changed (unix seconds), for the
-- license-change cooldown (Microsoft propagates license changes slowly, licensing.md §2.7).
ALTER TABLE direct_routes ADD COLUMN last_license_change BIGINT;
