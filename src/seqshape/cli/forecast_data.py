"""The CSV side of the forecaster commands (cli/forecast.py, cli/forecast_cmd.py): column lists,
``--horizons``, reading a frame with its column roles, and the time-based train/val/test split."""

from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError


def _cols(text: str | None) -> list[str]:
    return [c.strip() for c in text.split(",") if c.strip()] if text else []


def parse_horizons(text: str | None) -> list[int]:
    """``"24,48,168"`` -> [24, 48, 168] (None -> []); anything else is a ConfigError."""
    try:
        values = [int(v) for v in _cols(text)]
    except ValueError:
        values = []
    if text is not None and (not values or min(values) < 1):
        raise ConfigError(
            f"--horizons: expected comma-separated positive integers like 24,48, got {text!r}"
        )
    return values


def read_frame(path: Path, spec: dict):
    """Read a wide or long CSV with the column roles recorded in ``spec``."""
    from ..data.series import read_series_csv

    fut = spec.get("future_covariates") or []
    return read_series_csv(
        path,
        target=spec["target"],
        past_covariates=spec.get("past_covariates") or [],
        future_covariates="auto" if fut == "auto" else fut,
        time_column=spec.get("time_column"),
        series_column=spec.get("series_column"),
        missing=spec.get("missing", "error"),
    )


def with_statics(path: Path, spec: dict, frame, *, optional: bool = False) -> tuple[list, object]:
    """The frame's series with their static covariates (``spec["static_covariates"]``, columns
    of the same CSV, constant within each series) -> (series, a neuralforecast-style static_df or
    None). ``optional``: a history file without those columns leaves them to the model."""
    from dataclasses import replace

    import pandas as pd

    from ..data.series_csv import read_static_columns

    series = frame.to_series()
    names = list(spec.get("static_covariates") or [])
    if not names:
        return series, None
    table = read_static_columns(
        path, names, series_column=spec.get("series_column"), optional=optional
    )
    if not table:
        return series, None
    series = [replace(s, static=table[s.name]) for s in series]
    cols = {c: [float(v[j]) for v in table.values()] for j, c in enumerate(names)}
    return series, pd.DataFrame({"unique_id": list(table), **cols})


def split_bounds(
    frame, split: str | None, split_dates: str | None, ett: bool
) -> tuple[list[int], list[int], list[int]]:
    """Per series: (train_end, val_end, test_end) row counts, time-based: the library's one split
    (seqshape.data.series: by counts for --ett-split, by dates, else by fractions)."""
    from ..data import series as S

    if ett:
        sp = S.split_by_counts(frame, S.ett_split())
    elif split_dates:
        dates = _cols(split_dates)
        if len(dates) != 2:
            raise ConfigError(
                f"--split-dates: expected two dates (validation start, test start), got {dates}"
            )
        sp = S.split_by_dates(frame, dates)
    else:
        fr = [float(v) for v in _cols(split or "0.7,0.1,0.2")]
        if len(fr) != 3 or abs(sum(fr) - 1.0) > 1e-6 or min(fr) <= 0:
            raise ConfigError(
                f"--split: expected three positive fractions summing to 1 (train,val,test), "
                f"got {split!r}"
            )
        sp = S.split_by_fraction(frame, fr)
    tr, va, te = (col.tolist() for col in sp.bounds.T)
    return tr, va, te
