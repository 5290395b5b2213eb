-- HQ's system of record for the legacy REST API (tillmesh_hq::pg_records): the seed's
-- `sync_orders` and `transactions` with money in integer minor units (cents), plus what HQ keeps
-- besides: each record's Automerge document, its change-feed position, device tokens and the
-- conflict log. Times are milliseconds since the Unix epoch.

-- Counters that batches advance inside their transaction, so that a rolled-back batch gives its
-- numbers back: 'position' is the newest change-feed position, 'assigned' the last number of
-- HQ's own sequence for renumbered orders.
CREATE TABLE legacy_counters (
    name VARCHAR(20) PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO legacy_counters (name, value) VALUES ('position', 0), ('assigned', 0);

CREATE TABLE sync_orders (
    id UUID PRIMARY KEY,                          -- the Automerge document (the REST serverId)
    local_id UUID NOT NULL,                       -- the device-made idempotency key
    client_id VARCHAR(50) NOT NULL,               -- the legacy order's `id`
    order_number VARCHAR(50) NOT NULL,
    subtotal_cents BIGINT NOT NULL,
    tax_cents BIGINT NOT NULL,
    total_cents BIGINT NOT NULL,
    payment_method VARCHAR(50) NULL,
    payment_status VARCHAR(50) NOT NULL,
    order_status VARCHAR(50) NOT NULL,
    device_id TEXT NOT NULL,                      -- the device that created it
    written_by TEXT NOT NULL,                     -- the device of its latest change
    sync_version BIGINT NOT NULL,
    server_hash VARCHAR(64) NOT NULL,
    heads VARCHAR(64) NOT NULL,
    deleted BOOLEAN NOT NULL,
    logged_conflict TEXT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    changed_at BIGINT NOT NULL,
    position BIGINT NOT NULL,
    document BYTEA NOT NULL,
    CONSTRAINT sync_orders_local_id_unique UNIQUE (local_id),
    CONSTRAINT sync_orders_order_number_unique UNIQUE (order_number),
    CONSTRAINT sync_orders_position_unique UNIQUE (position)
);
CREATE INDEX sync_orders_changed_at ON sync_orders (changed_at);
CREATE INDEX sync_orders_device_id ON sync_orders (device_id);

CREATE TABLE sync_order_items (
    order_id UUID NOT NULL REFERENCES sync_orders (id) ON DELETE CASCADE,
    line INT NOT NULL,                            -- 0, 1, …: the lines' order in the record
    product_id TEXT NOT NULL,
    product_name TEXT NOT NULL,
    quantity BIGINT NOT NULL,
    unit_price_cents BIGINT NOT NULL,
    total_price_cents BIGINT NOT NULL,
    PRIMARY KEY (order_id, line)
);

CREATE TABLE transactions (
    id UUID PRIMARY KEY,
    local_id UUID NOT NULL,
    client_id VARCHAR(50) NOT NULL,               -- the legacy transaction's `id`
    reference_number VARCHAR(50) NOT NULL,
    amount_cents BIGINT NOT NULL,
    payment_method VARCHAR(50) NOT NULL,
    status VARCHAR(50) NOT NULL,
    order_id VARCHAR(50) NOT NULL,                -- the legacy `orderId`, as the client knows it
    device_id TEXT NOT NULL,
    written_by TEXT NOT NULL,
    sync_version BIGINT NOT NULL,
    server_hash VARCHAR(64) NOT NULL,
    heads VARCHAR(64) NOT NULL,
    deleted BOOLEAN NOT NULL,
    logged_conflict TEXT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    changed_at BIGINT NOT NULL,
    position BIGINT NOT NULL,
    document BYTEA NOT NULL,
    CONSTRAINT transactions_local_id_unique UNIQUE (local_id),
    CONSTRAINT transactions_reference_number_unique UNIQUE (reference_number),
    CONSTRAINT transactions_position_unique UNIQUE (position)
);
CREATE INDEX transactions_changed_at ON transactions (changed_at);
CREATE INDEX transactions_device_id ON transactions (device_id);

CREATE TABLE legacy_devices (
    token_sha256 VARCHAR(64) PRIMARY KEY,         -- hex SHA-256 of the device's bearer token
    device_id VARCHAR(64) NOT NULL,
    created_at BIGINT NOT NULL,
    CONSTRAINT legacy_devices_device_id_unique UNIQUE (device_id)
);

CREATE TABLE legacy_conflicts (
    seq BIGSERIAL PRIMARY KEY,
    at BIGINT NOT NULL,
    kind VARCHAR(20) NOT NULL,                    -- 'order' or 'transaction'
    local_id UUID NOT NULL,
    doc_id UUID NOT NULL,
    device_id TEXT NOT NULL,
    field TEXT NOT NULL,
    client_value TEXT NULL,
    server_value TEXT NULL,
    resolution VARCHAR(20) NOT NULL
);
