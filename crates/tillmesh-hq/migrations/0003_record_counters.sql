-- What `/metrics` and `/api/health` report (tillmesh_hq::pg_records, `counts`) kept as counters
-- beside 'position' and 'assigned', so that reading them costs one lookup however many records
-- there are: 'orders' and 'transactions' (records held), 'devices' (legacy devices with a token)
-- and 'conflicts' (entries in the conflict log). Batches advance the first two and 'conflicts' in
-- the statement that writes their rows; adding a device advances 'devices' in its insert.
--
-- Counted once here from the rows already held, under the batch lock (tillmesh_hq::pg_records::
-- BATCH_LOCK_KEY) so that no batch of another HQ process commits between the count and the
-- migration's commit.
SELECT pg_advisory_xact_lock(8388354993901892456);

INSERT INTO legacy_counters (name, value) VALUES
    ('orders', (SELECT count(*) FROM sync_orders)),
    ('transactions', (SELECT count(*) FROM transactions)),
    ('devices', (SELECT count(*) FROM legacy_devices)),
    ('conflicts', (SELECT count(*) FROM legacy_conflicts));
