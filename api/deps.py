"""Dependencies the routes declare; tests replace them with `app.dependency_overrides`.

All are `async def` although none awaits: FastAPI runs a plain `def` dependency in its
threadpool, and those hops (four per request) were the largest single cost of a job request.
"""

from __future__ import annotations

from typing import Annotated

import redis
from fastapi import Depends, Request

from api.events import JobEvents
from shared.jobs import AsyncJobStore, JobStore
from shared.queue import ClassifyQueue
from shared.settings import Settings, get_settings


async def _settings() -> Settings:
    return get_settings()


async def _store(request: Request) -> JobStore:
    store: JobStore = request.app.state.store
    return store


async def _async_store(request: Request) -> AsyncJobStore:
    store: AsyncJobStore = request.app.state.async_store
    return store


async def _redis(request: Request) -> redis.Redis:
    client: redis.Redis = request.app.state.redis
    return client


async def _queue(request: Request) -> ClassifyQueue:
    queue: ClassifyQueue = request.app.state.queue
    return queue


async def _events(request: Request) -> JobEvents:
    events: JobEvents = request.app.state.events
    return events


SettingsDep = Annotated[Settings, Depends(_settings)]
StoreDep = Annotated[JobStore, Depends(_store)]
AsyncStoreDep = Annotated[AsyncJobStore, Depends(_async_store)]
RedisDep = Annotated[redis.Redis, Depends(_redis)]
QueueDep = Annotated[ClassifyQueue, Depends(_queue)]
EventsDep = Annotated[JobEvents, Depends(_events)]
