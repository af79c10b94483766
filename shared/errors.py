"""Domain errors, defined once. Each carries a stable machine-readable `code`.

    ImgclfError
    ├── InvalidRequestError            bad input from a client
    │   ├── InvalidParameterError      a query parameter out of its configured range
    │   │   ├── UnknownModelError      a model the deployment does not serve (MODELS)
    │   │   └── InvalidCustomIdError   a collection item's custom_id: empty, too long, control
    │   │                              characters
    │   ├── InvalidImageError          not an image, empty, truncated, undecodable
    │   ├── UnsupportedFormatError     an image, but not a format we accept
    │   ├── UploadTooLargeError        more bytes than MAX_UPLOAD_BYTES
    │   ├── UploadTimeoutError         a body slower than UPLOAD_TIMEOUT_SECONDS
    │   └── ImageTooLargeError         more pixels than MAX_IMAGE_PIXELS
    ├── UnauthorizedError              API keys are on and the request has no valid one
    ├── JobNotFoundError               unknown or expired job id
    ├── JobNotCancelableError          the job already runs or has finished
    ├── CollectionNotFoundError        unknown or expired collection id (or another key's)
    ├── CollectionClosedError          images added to a closed, canceled or expired collection
    ├── CollectionFullError            more images than MAX_COLLECTION_IMAGES
    ├── ServiceUnavailableError        a dependency is down or saturated (retry later)
    │   ├── StoreUnavailableError      Redis does not answer
    │   └── QueueFullError             MAX_QUEUE_LENGTH reached
    ├── JobTimeoutError                no worker finished the job in time
    ├── WorkerLostError                worker processes died on this job again and again
    └── ModelError                     a model's card or files are missing, wrong or unusable

`api/errors.py` is the one place that maps these to HTTP statuses.
"""

from __future__ import annotations


class ImgclfError(Exception):
    """Base of every error imgclf raises on purpose."""

    code = "internal_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidRequestError(ImgclfError):
    code = "invalid_request"


class InvalidParameterError(InvalidRequestError):
    code = "validation_error"


class UnknownModelError(InvalidParameterError):
    code = "unknown_model"


class InvalidCustomIdError(InvalidParameterError):
    code = "invalid_custom_id"


class InvalidImageError(InvalidRequestError):
    code = "invalid_image"


class UnsupportedFormatError(InvalidRequestError):
    code = "unsupported_format"


class UploadTooLargeError(InvalidRequestError):
    code = "upload_too_large"


class UploadTimeoutError(InvalidRequestError):
    code = "upload_timeout"


class ImageTooLargeError(InvalidRequestError):
    code = "image_too_large"


class UnauthorizedError(ImgclfError):
    code = "unauthorized"


class JobNotFoundError(ImgclfError):
    code = "job_not_found"


class JobNotCancelableError(ImgclfError):
    code = "job_not_cancelable"


class CollectionNotFoundError(ImgclfError):
    code = "collection_not_found"


class CollectionClosedError(ImgclfError):
    code = "collection_closed"


class CollectionFullError(ImgclfError):
    code = "collection_full"


class JobNotRetryableError(ImgclfError):
    code = "job_not_retryable"


class ForbiddenError(ImgclfError):
    code = "forbidden"


class IdempotencyKeyReusedError(ImgclfError):
    """The Idempotency-Key was used before with another request (other images or options)."""

    code = "idempotency_key_reused"


class IdempotencyInProgressError(ImgclfError):
    """A request with this Idempotency-Key is still being accepted."""

    code = "idempotency_in_progress"


class ServiceUnavailableError(ImgclfError):
    code = "service_unavailable"


class StoreUnavailableError(ServiceUnavailableError):
    code = "store_unavailable"


class QueueFullError(ServiceUnavailableError):
    code = "queue_full"


class JobTimeoutError(ImgclfError):
    code = "timeout"


class WorkerLostError(ImgclfError):
    code = "worker_lost"


class ModelError(ImgclfError):
    code = "model_error"


def _with_subclasses(cls: type[ImgclfError]) -> list[type[ImgclfError]]:
    return [cls, *(sub for child in cls.__subclasses__() for sub in _with_subclasses(child))]


ERRORS_BY_CODE: dict[str, type[ImgclfError]] = {
    cls.code: cls for cls in _with_subclasses(ImgclfError)
}


def error_from_code(code: str, message: str) -> ImgclfError:
    """Rebuild the domain error a worker recorded in a job, so the API can map it to HTTP."""
    return ERRORS_BY_CODE.get(code, ImgclfError)(message)
