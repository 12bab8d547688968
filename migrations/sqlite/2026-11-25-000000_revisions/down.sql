ALTER TABLE customers DROP COLUMN revision;
ALTER TABLE conversations DROP COLUMN revision;
