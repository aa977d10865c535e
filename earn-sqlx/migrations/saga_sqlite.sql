CREATE TABLE IF NOT EXISTS earn_sagas (
    saga TEXT NOT NULL,
    id TEXT NOT NULL,
    status TEXT NOT NULL,
    state TEXT NOT NULL,
    compensations TEXT NOT NULL,
    deadline BIGINT,
    reason TEXT,
    version BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (saga, id)
);
CREATE INDEX IF NOT EXISTS earn_sagas_deadline ON earn_sagas (deadline);
