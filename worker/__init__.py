"""The Celery worker: holds SqueezeNet in memory and runs classification jobs."""
