"""`/api/v1/models`: the models this deployment serves, their cards, and who serves them now."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from api.deps import ServiceDep
from api.errors import error_responses
from shared.model_cards import InputSpec, ModelCard
from shared.workers import ServedModel, WorkerInfo, serves

router = APIRouter(tags=["models"])


class ModelSummary(BaseModel):
    """A model, as its card describes it, and the worker processes that serve it now."""

    name: str = Field(description="What `?model=` takes")
    version: str
    title: str
    description: str
    default: bool = Field(description="Whether jobs that name no model run on it")
    input: InputSpec
    preprocessing: str = Field(description="The input recipe in words")
    output_kind: str = Field(description="`logits` (softmax applied) or `probabilities`")
    num_classes: int
    sha256: list[str] = Field(description="The model file's checksums its card accepts")
    workers_online: int = Field(description="Live worker processes serving it")
    serving: list[ServedModel] = Field(
        description="The versions live workers serve (during a rollout, more than one)"
    )


class ModelList(BaseModel):
    default_model: str
    models: list[ModelSummary]


def summary(card: ModelCard, *, default: bool, live: list[WorkerInfo]) -> ModelSummary:
    """A card and the live workers, as a client sees the model."""
    serving = {
        (s.name, s.version, s.sha256): s
        for info in live
        for s in info.models
        if s.name == card.name
    }
    return ModelSummary(
        name=card.name,
        version=card.version,
        title=card.title,
        description=card.description,
        default=default,
        input=card.input,
        preprocessing=card.input.describe(),
        output_kind=card.output.kind,
        num_classes=card.output.classes,
        sha256=card.model.sha256,
        workers_online=sum(serves(info, card.name) for info in live),
        serving=list(serving.values()),
    )


@router.get("/models", response_model=ModelList, responses=error_responses())
async def list_models(service: ServiceDep) -> ModelList:
    """Every model the deployment serves (MODELS), with its card and live workers."""
    live = await service.live_workers()
    return ModelList(
        default_model=service.default_model,
        models=[
            summary(folder.card, default=name == service.default_model, live=live)
            for name, folder in service.models.items()
        ],
    )
