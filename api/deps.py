"""Dependencies the routes declare; tests replace them with `app.dependency_overrides`."""

from __future__ import annotations

from typing import Annotated

import redis
from celery import Celery
from fastapi import Depends, Request

from api.events import JobEvents
from shared.jobs import JobStore
from shared.settings import Settings, get_settings


def _store(request: Request) -> JobStore:
    store: JobStore = request.app.state.store
    return store


def _redis(request: Request) -> redis.Redis:
    client: redis.Redis = request.app.state.redis
    return client


def _celery(request: Request) -> Celery:
    celery: Celery = request.app.state.celery
    return celery


def _events(request: Request) -> JobEvents:
    events: JobEvents = request.app.state.events
    return events


SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[JobStore, Depends(_store)]
RedisDep = Annotated[redis.Redis, Depends(_redis)]
CeleryDep = Annotated[Celery, Depends(_celery)]
EventsDep = Annotated[JobEvents, Depends(_events)]
