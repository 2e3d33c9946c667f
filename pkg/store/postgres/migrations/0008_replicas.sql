-- 0008: replica heartbeats for the sync status (SPEC §13).
--
-- Every serving replica upserts its row every few seconds: its id,
-- version, start time, the change-feed seq up to which it has applied
-- every change and when it last moved. heartbeat_at is the database's
-- clock, so liveness never depends on the replicas' clocks agreeing.
-- Rows silent for a day are deleted by any heartbeat.
--
-- key_changes_key_idx finds a key's last feed change (GetSyncStatus for
-- a key) without scanning the day of feed; it covers key rows only.
-- Idempotent like the others.

CREATE TABLE IF NOT EXISTS replicas (
    id           text        NOT NULL,
    version      text        NOT NULL DEFAULT '',
    started_at   timestamptz NOT NULL,
    applied_seq  bigint      NOT NULL DEFAULT 0,
    applied_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    heartbeat_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    stopped      boolean     NOT NULL DEFAULT false,
    CONSTRAINT replicas_pkey PRIMARY KEY (id),
    CONSTRAINT replicas_id_check CHECK (length(id) BETWEEN 1 AND 256 AND id !~ '[[:cntrl:][:space:]]'),
    CONSTRAINT replicas_version_check CHECK (length(version) <= 256)
);
CREATE INDEX IF NOT EXISTS replicas_heartbeat_at_idx ON replicas (heartbeat_at);

CREATE INDEX IF NOT EXISTS key_changes_key_idx ON key_changes (account_id, object_id, seq) WHERE kind = 'key';
