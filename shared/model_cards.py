"""A model is data: a folder under MODELS_DIR named after the model, holding its ONNX file, its
labels (one class name per line) and `card.toml`, the card that says what the files are and how
the model wants its input. The card's schema is declared once, here; the API reads cards to list
and choose models, workers to load and check them, `scripts/download_model.py` to install them.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from shared.errors import ModelError

CARD_FILENAME = "card.toml"
# The model of the time before models were data: jobs without a model are its, and its queues
# and bookkeeping keep the names they had then, so work queued before an upgrade still runs.
ORIGINAL_MODEL = "squeezenet"
# Names that would collide with another queue or key of imgclf (`shared.lanes`).
RESERVED_NAMES = frozenset({"high", "normal", "low", "webhooks"})
NAME_PATTERN = r"^[a-z][a-z0-9_-]{0,31}$"

Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
Triple = tuple[float, float, float]


class _Strict(BaseModel):
    # A misspelt key in a card must be an error, not a default silently used.
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelFileSpec(_Strict):
    """A file of the model's folder: its name there, every sha256 known to be good, and where
    `download_model.py` fetches it from (none: it must be put there by hand)."""

    file: Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]+$")]
    sha256: Annotated[list[Sha256], Field(min_length=1)]
    url: str | None = None


class InputSpec(_Strict):
    """How an RGB image becomes the model's input tensor (float32)."""

    height: Annotated[int, Field(ge=1, le=4096)]
    width: Annotated[int, Field(ge=1, le=4096)]
    # `shorter_side_crop`: the shorter side resized to `shorter_side`, then the centre
    # height x width cut out; `resize`: the whole image resized to height x width.
    resize: Literal["shorter_side_crop", "resize"] = "shorter_side_crop"
    shorter_side: Annotated[int | None, Field(ge=1, le=8192)] = None
    # Each 8-bit value is divided by `scale` (255: values in [0, 1]; 1: in [0, 255]), then has
    # the channel's mean subtracted and is divided by its std.
    scale: Annotated[float, Field(gt=0)] = 255.0
    mean: Triple = (0.0, 0.0, 0.0)
    std: Triple = (1.0, 1.0, 1.0)
    channels: Literal["RGB", "BGR"] = "RGB"
    layout: Literal["NCHW", "NHWC"] = "NCHW"

    @field_validator("std")
    @classmethod
    def _no_zero_std(cls, std: Triple) -> Triple:
        if any(value <= 0 for value in std):
            raise ValueError("every std must be above 0")
        return std

    def shape(self, batch: int = 1) -> tuple[int, int, int, int]:
        """The input tensor's shape for `batch` images."""
        if self.layout == "NCHW":
            return (batch, 3, self.height, self.width)
        return (batch, self.height, self.width, 3)

    def describe(self) -> str:
        """The recipe in words, for people (model info)."""
        if self.resize == "shorter_side_crop":
            sizing = (
                f"resize shorter side to {self.shorter_side} (bilinear); centre crop "
                f"{self.width}x{self.height}"
            )
        else:
            sizing = f"resize to {self.width}x{self.height} (bilinear)"
        return (
            f"{self.channels}; {sizing}; divide by {self.scale:g}; normalize mean "
            f"{list(self.mean)} std {list(self.std)}; {self.layout} float32"
        )


class OutputSpec(_Strict):
    """What the model gives: one score per class (its labels, in order)."""

    classes: Annotated[int, Field(ge=2, le=100_000)]
    # `logits`: softmax is applied to them; `probabilities`: they are used as they are.
    kind: Literal["logits", "probabilities"] = "logits"


class ModelCard(_Strict):
    """What a model is, and what imgclf needs to serve it."""

    name: Annotated[str, Field(pattern=NAME_PATTERN)]
    version: Annotated[str, Field(min_length=1, max_length=64)]
    title: Annotated[str, Field(min_length=1, max_length=100)]
    description: str = ""
    model: ModelFileSpec
    labels: ModelFileSpec
    input: InputSpec
    output: OutputSpec

    @field_validator("name")
    @classmethod
    def _not_reserved(cls, name: str) -> str:
        if name in RESERVED_NAMES:
            raise ValueError(f"{name!r} is reserved ({', '.join(sorted(RESERVED_NAMES))})")
        return name

    def model_post_init(self, context: object, /) -> None:
        if self.input.resize == "shorter_side_crop":
            side = self.input.shorter_side
            if side is None or side < max(self.input.height, self.input.width):
                raise ValueError(
                    "input.shorter_side is needed with resize = 'shorter_side_crop', at least "
                    "input.height and input.width"
                )


class ModelFolder(BaseModel):
    """A card and the folder its files are in."""

    model_config = ConfigDict(frozen=True)

    card: ModelCard
    folder: Path

    @property
    def model_path(self) -> Path:
        return self.folder / self.card.model.file

    @property
    def labels_path(self) -> Path:
        return self.folder / self.card.labels.file


def read_card(folder: Path) -> ModelFolder:
    """The card in `folder`; `ModelError` saying what is wrong with it."""
    path = folder / CARD_FILENAME
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"No model card at {path}") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ModelError(f"The model card {path} is unreadable: {exc}") from exc
    try:
        card = ModelCard.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or 'card'}: {error['msg']}"
            for error in exc.errors()
        )
        raise ModelError(f"The model card {path} is invalid: {problems}") from None
    if card.name != folder.name:
        raise ModelError(
            f"The model card {path} names the model {card.name!r}; its folder must have that name"
        )
    return ModelFolder(card=card, folder=folder)


def read_cards(models_dir: Path, names: list[str]) -> dict[str, ModelFolder]:
    """The cards of the models `names` lists, in that order; `ModelError` for the first that
    is missing or invalid."""
    return {name: read_card(models_dir / name) for name in names}


def valid_name(name: str) -> bool:
    return bool(re.match(NAME_PATTERN, name)) and name not in RESERVED_NAMES


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def labels_sha256(data: bytes) -> str:
    """A labels file's checksum: hashed with a final newline, so that a copy without one (as
    some upstreams publish it) proves the same."""
    if not data.endswith(b"\n"):
        data += b"\n"
    return hashlib.sha256(data).hexdigest()


def read_labels(path: Path) -> list[str]:
    """The class names, index = line number."""
    return path.read_text(encoding="utf-8").splitlines()
