-- Identical bytes under another key reuse an existing analysis (same prompt, provider, model)
-- instead of calling the model again: look-ups by image hash, whichever item holds it.
CREATE INDEX analyses_image_idx ON analyses (image_sha256, prompt_version, provider, model);
