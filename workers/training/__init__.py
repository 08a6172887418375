"""Training loops the service runs itself: plain functions over in-memory data that report
progress, honour cancellation and hand out whole-state checkpoints through callbacks.
They know nothing of Celery, Redis or S3."""
