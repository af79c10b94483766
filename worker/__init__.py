"""The Celery worker: holds SqueezeNet in memory and runs classification jobs."""

import os

# onnxruntime sends usage telemetry to Microsoft from every process that imports it, unless this
# is set before the import (its disable_telemetry_events() does not stop it). A self-hosted
# service talks to no one its operator did not configure, and every worker entry point imports
# this package before onnxruntime. An operator may still set it to 0 on purpose.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
