-- Revoking a legacy device (tillmesh_hq::pg_records, `revoke_device`): when its token was
-- revoked, NULL while the token is valid. A revoked device keeps its row and its token's hash, so
-- that the token is refused as revoked; adding the device again puts a new token's hash, its
-- time and NULL here. From here on the 'devices' counter counts devices whose token is valid: no
-- device is revoked yet, so it holds that number already.
ALTER TABLE legacy_devices ADD COLUMN revoked_at BIGINT NULL;
