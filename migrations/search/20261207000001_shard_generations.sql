-- Search sharded by user (SEARCH_SHARDS): each shard's replica counts the
-- changes it made to search.chunks, and its on-disk indexes record the
-- value they reflect, so start-up knows whether they are current. An
-- unsharded service is shard 0 of 1 and keeps the counter it had.
CREATE TABLE search.shard_generations (
    shards          integer NOT NULL CHECK (shards > 0),
    shard           integer NOT NULL CHECK (shard >= 0 AND shard < shards),
    value           bigint NOT NULL,
    PRIMARY KEY (shards, shard)
);
INSERT INTO search.shard_generations (shards, shard, value)
    SELECT 1, 0, value FROM search.generation;
DROP TABLE search.generation;
