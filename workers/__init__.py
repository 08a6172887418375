"""Celery workers: thin tasks around plain pipeline functions."""
