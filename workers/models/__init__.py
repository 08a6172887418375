"""Model wrappers and loaders. Loaded lazily, cached per worker process."""
