"""Flower's configuration file:

    celery -A worker.celery_app flower --conf=worker/flower_config.py

Flower executes this file and takes its top-level names as options. It guards the one thing
Flower does not: without FLOWER_BASIC_AUTH it refuses to start, unless DEV_MODE is on, in which
case it says loudly that anyone who can reach it may inspect and control the workers.
"""

from __future__ import annotations

import sys

from shared.settings import get_settings

_settings = get_settings()

port = _settings.flower_port
# Flower's own /metrics, scraped by Prometheus beside the API and the workers.
purge_offline_workers = 60

if _settings.flower_basic_auth is not None:
    basic_auth = _settings.flower_basic_auth.get_secret_value().split(",")
elif _settings.dev_mode:
    print(
        "WARNING: Flower runs WITHOUT authentication (DEV_MODE). Anyone who can reach it can "
        "inspect and control the workers. Set FLOWER_BASIC_AUTH=user:password.",
        file=sys.stderr,
        flush=True,
    )
else:
    sys.exit(
        "Flower refuses to start without authentication: set FLOWER_BASIC_AUTH=user:password "
        "(several as user1:pw1,user2:pw2), or DEV_MODE=1 to run it open on a private machine."
    )
