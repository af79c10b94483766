"""`/api/v1/limits`: what the API accepts, so clients (the UI's uploader) never promise more."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from api.deps import ServiceDep
from api.errors import error_responses
from shared.image_checks import FILE_EXTENSIONS, SUPPORTED_FORMATS

router = APIRouter(tags=["system"])


class Limits(BaseModel):
    max_upload_bytes: int = Field(description="Per file (MAX_UPLOAD_BYTES)")
    max_batch_files: int
    max_collection_images: int = Field(description="Images per collection")
    max_image_pixels: int
    formats: list[str] = Field(description="Image formats accepted")
    file_extensions: list[str] = Field(description="File name endings those formats use")
    default_top_k: int
    max_wait_seconds: float


@router.get("/limits", response_model=Limits, responses=error_responses())
async def limits(service: ServiceDep) -> Limits:
    """Upload and request limits, as the API enforces them."""
    settings = service.settings
    return Limits(
        max_upload_bytes=settings.max_upload_bytes,
        max_batch_files=settings.max_batch_files,
        max_collection_images=settings.max_collection_images,
        max_image_pixels=settings.max_image_pixels,
        formats=sorted(SUPPORTED_FORMATS),
        file_extensions=list(FILE_EXTENSIONS),
        default_top_k=settings.default_top_k,
        max_wait_seconds=settings.max_wait_seconds,
    )
