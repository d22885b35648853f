-- License audit rows outlive the enterprise they describe: a carrier bills the months before a
-- customer left after it has been deleted. So they are keyed by enterprise name, without a
-- foreign key, and `enterprise delete --cascade` leaves them.
CREATE TABLE license_history (
    enterprise TEXT NOT NULL,
    day        TEXT NOT NULL,
    report     TEXT NOT NULL,
    PRIMARY KEY (enterprise, day)
);
INSERT INTO license_history (enterprise, day, report)
    SELECT e.name, a.day, a.report FROM license_audit a JOIN enterprises e ON e.id = a.enterprise_id;
DROP TABLE license_audit;
