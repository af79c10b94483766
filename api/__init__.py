"""The HTTP API: accepts uploads, enqueues jobs, serves results. It never runs the model."""
