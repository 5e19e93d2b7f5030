"""ImageProcessorLambda: S3 original -> thumbnail + analysis copy -> `items` row -> ImageProcessed."""
