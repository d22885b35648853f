-- The side ('teams' or 'pbx') whose BYE got no answer by Timer F after the call ended: that
-- peer may still think the call is up (a Teams client showing a call nobody is on).
ALTER TABLE cdrs ADD COLUMN bye_lost TEXT;
