-- A per-user daily analysis budget: an item whose bytes would need a model call once the user's
-- budget for the day (UTC) is spent is `deferred` instead, and analyzed when requeued (the daily
-- DeferredAnalysesLambda, or scripts/collections_deferred.py).
ALTER TABLE items DROP CONSTRAINT items_status_check;
ALTER TABLE items ADD CONSTRAINT items_status_check CHECK (status IN ('processed', 'failed', 'deferred'));
CREATE INDEX items_deferred_idx ON items (updated_at) WHERE status = 'deferred';
-- One row per analysis charged to a user's day: keyed by item and bytes so a redelivered event
-- or a retried model call is charged once. No foreign key: deleting an item does not refund.
CREATE TABLE analysis_charges (
    item_id      uuid NOT NULL,
    image_sha256 text NOT NULL,
    day          date NOT NULL,
    user_id      text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (item_id, image_sha256, day)
);
CREATE INDEX analysis_charges_user_day_idx ON analysis_charges (user_id, day);
