CREATE TABLE IF NOT EXISTS earn_sagas (
    saga VARCHAR(255) NOT NULL,
    id VARCHAR(64) NOT NULL,
    status VARCHAR(16) NOT NULL,
    state LONGTEXT NOT NULL,
    compensations LONGTEXT NOT NULL,
    deadline BIGINT,
    reason TEXT,
    version BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (saga, id),
    INDEX earn_sagas_deadline (deadline)
);
