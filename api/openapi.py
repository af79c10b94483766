"""The OpenAPI document of this deployment: parameters whose valid values are settings say so,
so that a request the document calls valid is one the API takes.

FastAPI builds the document from the routes' annotations, which cannot know the settings: the
models a deployment serves (`MODELS`) become the `model` parameter's enum, `wait`'s maximum
becomes `MAX_WAIT_SECONDS`, `callback_url` is there only where webhooks are on
(`WEBHOOK_SECRET`), and an upload is at least one byte, a batch 1 to `MAX_BATCH_FILES` of them;
a collection's model and custom_ids likewise. Links lead from a submit's answer to what a client
does next with the job (read it, cancel it, retry it), and from a collection's creation to its
routes, so that a client generator, and a stateful fuzzer, can follow them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

from api.collection_items import MAX_CUSTOM_ID_CHARS
from shared.settings import Settings

# Where a submit's answer holds a job id (a JSON pointer), and what can be done with that job.
_SUBMITS = {("/api/v1/jobs", "post"): "/job_id", ("/api/v1/jobs/batch", "post"): "/jobs/0/job_id"}
_WITH_A_JOB = {
    "GetJob": ("/api/v1/jobs/{job_id}", "get"),
    "CancelJob": ("/api/v1/jobs/{job_id}", "delete"),
    "RetryJob": ("/api/v1/jobs/{job_id}/retry", "post"),
}
_WITH_A_COLLECTION = {
    "AddImages": ("/api/v1/collections/{collection_id}/images", "post"),
    "GetCollection": ("/api/v1/collections/{collection_id}", "get"),
    "CloseCollection": ("/api/v1/collections/{collection_id}/close", "post"),
    "GetResults": ("/api/v1/collections/{collection_id}/results", "get"),
    "CancelCollection": ("/api/v1/collections/{collection_id}", "delete"),
}
# A custom_id: 1 to MAX_CUSTOM_ID_CHARS characters, none of them a control character.
_CUSTOM_ID = {"type": "string", "minLength": 1, "maxLength": MAX_CUSTOM_ID_CHARS,
              "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f]+$"}  # fmt: skip


def of_deployment(app: FastAPI, settings: Settings) -> Callable[[], dict[str, Any]]:
    """`app.openapi`, narrowed to `settings` (built once, on the first call)."""
    generic = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            narrow(generic(), settings)
        assert app.openapi_schema is not None
        return app.openapi_schema

    return openapi


def narrow(document: dict[str, Any], settings: Settings) -> None:
    """Each operation's `model`, `wait` and `callback_url` query parameters, and the uploads of
    its multipart body, as this deployment takes them."""
    _link_submits_to_their_jobs(document["paths"])
    _link_collection(document["paths"])
    schemas = document.get("components", {}).get("schemas", {})
    for body in schemas.values():
        for field in body.get("properties", {}).values():
            _uploads(field, max_files=settings.max_batch_files)
    _collection_bodies(schemas, settings)
    for operations in document["paths"].values():
        for operation in operations.values():
            if settings.webhook_secret is None and "parameters" in operation:
                operation["parameters"] = [
                    p for p in operation["parameters"] if p["name"] != "callback_url"
                ]
            for parameter in operation.get("parameters", []):
                if parameter["in"] != "query":
                    continue
                if parameter["name"] == "model":
                    parameter["schema"] = {
                        "type": "string",
                        "enum": settings.model_names(),
                        "title": "Model",
                        "description": parameter["schema"].get("description", ""),
                    }
                elif parameter["name"] == "wait":
                    parameter["schema"]["maximum"] = settings.max_wait_seconds


def _uploads(field: dict[str, Any], *, max_files: int) -> None:
    """An uploaded file (a binary string) is never empty; a list of them holds 1 to
    `max_files`."""
    if "contentMediaType" in field:
        field["minLength"] = 1
    elif field.get("type") == "array" and "contentMediaType" in field.get("items", {}):
        field["items"]["minLength"] = 1
        field.update(minItems=1, maxItems=max_files)


def _link_submits_to_their_jobs(paths: dict[str, Any]) -> None:
    for (path, method), pointer in _SUBMITS.items():
        links = {
            name: {
                "operationId": paths[target][target_method]["operationId"],
                "parameters": {"job_id": f"$response.body#{pointer}"},
            }
            for name, (target, target_method) in _WITH_A_JOB.items()
        }
        for status in ("200", "202"):
            paths[path][method]["responses"][status]["links"] = links


def _link_collection(paths: dict[str, Any]) -> None:
    links = {
        name: {
            "operationId": paths[target][method]["operationId"],
            "parameters": {"collection_id": "$response.body#/collection_id"},
        }
        for name, (target, method) in _WITH_A_COLLECTION.items()
    }
    paths["/api/v1/collections"]["post"]["responses"]["201"]["links"] = links


def _collection_bodies(schemas: dict[str, Any], settings: Settings) -> None:
    """A collection's `model` is one of MODELS, its callback URLs there only with webhooks on;
    an add's custom_ids are well-formed, one per file at most, and its files may be empty."""
    options = schemas["CollectionOptions"]["properties"]
    options["model"]["anyOf"] = [
        {"type": "string", "enum": settings.model_names()},
        {"type": "null"},
    ]
    if settings.webhook_secret is None:
        del options["job_callback_url"], options["callback_url"]
    for name, body in schemas.items():
        if not name.startswith("Body_add_images"):
            continue
        # An empty file is an item that is not an image: it fails on its own, the add does not.
        body["properties"]["files"]["items"].pop("minLength", None)
        field = body["properties"].get("custom_id")
        if field is not None:
            field["anyOf"] = [
                {"type": "array", "items": _CUSTOM_ID, "minItems": 1,
                 "maxItems": settings.max_batch_files},
                {"type": "null"},
            ]  # fmt: skip
