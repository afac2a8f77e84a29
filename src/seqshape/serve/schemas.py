"""The server's schemas: what it answers (response models, shown in /docs), the request bodies
whose list limits come from the `ServeConfig`, and how a request's validation errors and rows are
read (the field a message names, rows -> a float64 array).

No ``from __future__ import annotations`` here: the request models are built inside a function
and pydantic reads their annotations, which name that function's local types.
"""

import contextlib
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import AllowInfNan, BaseModel, ConfigDict, Field, Strict

from ..errors import ShapeError
from .config import ServeConfig


# -- response schemas (documentation and validation of what the server answers) ----------------
class ErrorResponse(BaseModel):
    detail: str
    error: str | None = None
    errors: list[dict[str, str]] | None = None


class Health(BaseModel):
    status: str


class ModelInfo(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str
    kind: str
    mode: str
    version: str
    input: dict[str, Any] | None = None
    output: dict[str, Any] | None = None
    streamable: bool


class ModelList(BaseModel):
    models: list[ModelInfo]


class Prediction(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    class_: str | int | float = Field(alias="class")
    probabilities: dict[str, float]


class PredictResponse(BaseModel):
    model: str
    predictions: list[Prediction]


class ForecastResponse(BaseModel):
    model_config = ConfigDict(extra="allow")
    model: str
    point: list[list[float]]


class StreamCreated(BaseModel):
    stream_id: str
    model: str
    next_seq: int
    idle_timeout_s: float


class StreamInfo(BaseModel):
    stream_id: str
    model: str
    next_seq: int
    points: int
    idle_s: float


class DetectResponse(BaseModel):
    model: str
    score: list[float] = Field(description="(T,) anomaly scores in [0, 1]")
    is_anomaly: list[bool] = Field(description="(T,) flags by the detector's threshold")
    prediction: list[list[float] | None] = Field(
        description="(T, O) one-step predictions, original units (null: no prediction, row 0)"
    )
    error: list[float | None] = Field(description="(T,) prediction errors, scaled units")
    std: list[list[float] | None] | None = Field(
        default=None, description="(T, O) predicted std (gaussian head)"
    )


class ObserveResponse(BaseModel):
    stream_id: str
    seq: int
    points: int = Field(description="points observed on this stream so far, this call included")
    results: list[dict[str, Any]] = Field(description="one result per point, in order")


class StreamDeleted(BaseModel):
    stream_id: str
    deleted: bool
    points: int


ERRORS = {s: {"model": ErrorResponse} for s in (400, 401, 404, 409, 413, 422, 429)}


# -- request schemas -----------------------------------------------------------------------------
Number = Annotated[float, Strict(), AllowInfNan(False)]
MAX_SEQ = 2**62
MAX_TIMESTAMP = 64  # characters of one ISO timestamp


def _request_schemas(cfg: ServeConfig) -> tuple[type[BaseModel], ...]:
    """Request bodies whose list limits come from the configuration (and show in /docs)."""
    Row = Annotated[list[Number], Field(min_length=1, max_length=cfg.max_features)]
    Steps = Annotated[list[Row], Field(min_length=1, max_length=cfg.max_steps)]
    Stamp = Annotated[str, Field(min_length=1, max_length=MAX_TIMESTAMP)]
    # forecasters fitted on several series: a series' name or index (its own scaling)
    Series = (
        Annotated[int, Strict(), Field(ge=0, le=2**31)]
        | Annotated[str, Field(min_length=1, max_length=256)]
    )

    class PredictRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        sequences: Annotated[list[Steps], Field(min_length=1, max_length=cfg.max_batch)] = Field(
            description="(B, T_i, F): one list of steps per sequence, one list of F numbers per step"
        )

    class ForecastRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        history: Steps = Field(description="(T, F): the observed rows, oldest first")
        k: Annotated[int, Strict(), Field(ge=1, le=cfg.max_horizon)] = Field(
            description="K: steps to forecast"
        )
        future_covariates: Steps | None = Field(
            default=None, description="(K, C): known covariates of the K future rows"
        )
        timestamps: (
            Annotated[
                list[Stamp],
                Field(min_length=1, max_length=cfg.max_steps + cfg.max_horizon),
            ]
            | None
        ) = Field(
            default=None,
            description="ISO times of the T history rows (or of T+K rows), for models whose known "
            "covariates are calendar features",
        )
        series: Series | None = Field(
            default=None,
            description="the series (name or index) whose scaling to use; needed when the model "
            "scales each of its training series on its own",
        )

    class DetectRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        values: Steps = Field(description="(T, O): the series' rows, oldest first")
        timestamps: Annotated[list[Stamp], Field(min_length=1, max_length=cfg.max_steps)] | None = (
            Field(default=None, description="ISO times of the T rows (detectors using time of day)")
        )
        warmup: Annotated[int, Strict(), Field(ge=0, le=cfg.max_steps)] = Field(
            default=0, description="rows at the start scored 0 and never flagged"
        )

    class OpenStreamRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        start: Literal["saved", "fresh"] | None = Field(
            default=None,
            description="detectors: continue the stream saved with the model (default) or start "
            "a fresh one",
        )
        warmup: Annotated[int, Strict(), Field(ge=0, le=2**62)] | None = Field(
            default=None, description="detectors, start 'fresh': points scored 0 at the start"
        )
        series: Series | None = Field(
            default=None,
            description="forecasters: the stream's series (name or index), whose scaling it uses",
        )

    class ObserveRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        seq: Annotated[int, Strict(), Field(ge=0, le=MAX_SEQ)] = Field(
            description="the client's sequence number: 0 for the first observe, then +1 each"
        )
        points: Annotated[list[Row], Field(min_length=1, max_length=cfg.max_points)] = Field(
            description="(P, F): the new points, oldest first"
        )
        timestamps: (
            Annotated[list[Stamp], Field(min_length=1, max_length=cfg.max_points)] | None
        ) = Field(
            default=None,
            description="(P,) ISO times of the points, for models that need them (calendar "
            "covariates, time of day)",
        )

    return PredictRequest, ForecastRequest, DetectRequest, OpenStreamRequest, ObserveRequest


def _field(loc: tuple) -> str:
    """("body", "sequences", 0, 3) -> "sequences[0][3]"; ("path", "name") -> "path.name"."""
    out = "" if loc[:1] == ("body",) else str(loc[0]) if loc else ""
    for p in loc[1:]:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "body"


def _error(e: dict) -> dict[str, str]:
    if e.get("type") == "json_invalid":
        pos = e.get("loc", (None, "?"))[-1]
        why = (e.get("ctx") or {}).get("error", "decode error")
        return {"field": "body", "message": f"not valid JSON at character {pos} ({why})"}
    if e.get("type") == "string_unicode":  # a lone surrogate such as "\ud800", in a value or a key
        return {
            "field": _field(tuple(e.get("loc", ()))),
            "message": "expected text that UTF-8 can encode, got a lone surrogate (\\ud800-\\udfff)",
        }
    return {"field": _field(tuple(e.get("loc", ()))), "message": str(e.get("msg", "invalid"))}


def _array(rows: list[list[float]] | np.ndarray, features: int | None, where: str) -> np.ndarray:
    """Nested lists (T, F) -> a float64 array; a wrong or ragged row length names the row."""
    want = features if features is not None else len(rows[0])
    if isinstance(rows, np.ndarray) and rows.shape[1] == want:
        return rows
    a = None
    with contextlib.suppress(ValueError):
        a = np.array(rows, dtype=np.float64)
    if a is None or a.ndim != 2 or a.shape[1] != want:
        what = "the model's input size" if features is not None else f"as in {where}[0]"
        for j, row in enumerate(rows):
            if len(row) != want:
                raise ShapeError(
                    f"{where}[{j}]: expected F={want} features ({what}), got {len(row)}"
                )
    return a
