-- Every analysis an item ever had, numbered per item; the highest version is current.
-- The unique key on (item, image hash, prompt version, provider, model) is what makes a
-- redelivered ImageProcessed event a no-op even when two deliveries race.
CREATE TABLE analyses (
    item_id        uuid NOT NULL REFERENCES items (item_id) ON DELETE CASCADE,
    version        integer NOT NULL CHECK (version > 0),
    category       text NOT NULL,
    subcategories  text[] NOT NULL DEFAULT '{}',
    headline       text NOT NULL,
    summary        text NOT NULL,
    raw            jsonb NOT NULL,
    provider       text NOT NULL,
    model          text NOT NULL,
    prompt_version text NOT NULL,
    image_sha256   text NOT NULL,
    input_tokens   integer NOT NULL DEFAULT 0,
    output_tokens  integer NOT NULL DEFAULT 0,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (item_id, version),
    UNIQUE (item_id, image_sha256, prompt_version, provider, model)
);
