"""The Numenta Anomaly Benchmark (NAB): corpus, detector results and the NAB scorer.

NAB (Lavin & Ahmad, "Evaluating Real-time Anomaly Detection Algorithms — the Numenta Anomaly
Benchmark", ICMLA 2015; https://github.com/numenta/NAB) is a corpus of 58 labelled univariate
series and a scoring rule that rewards *early* detection inside labelled anomaly windows.
This module reads the corpus and detector results and scores a detector with nab_score.py, a
fresh implementation of the published rule, vectorised with numpy:

* The first ``min(floor(0.15 * n), 750)`` rows of a series are probationary (NAB caps the
  probation at 15 % of 5000 rows): nothing there is scored, and a window that ends inside it
  is dropped from the score.
* The scorer (nab_score.py): a detection is a scored row whose anomaly score is ``>= threshold``;
  in each window the earliest detection earns up to ``tpWeight`` (more the earlier it is), a
  missed window costs ``fnWeight``, a detection outside every window up to ``fpWeight``; each
  profile's threshold is chosen to maximise the raw corpus score, which is then normalised
  between the null detector (0) and the perfect one (100).

Duplicated and out-of-order timestamps (daylight-saving repeats) occur in the corpus; window
limits resolve, as in NAB, to the *first* row carrying the limit's timestamp.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import ConfigError, DataError
from .nab_score import (
    ProfileScore,
    _layout,
    _score_layout,
    scaled_sigmoid,
    score_corpus,
    sweep_thresholds,
)

PROBATION_PERCENT = 0.15
_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
PROFILE_NAMES = ("standard", "reward_low_FP_rate", "reward_low_FN_rate")

__all__ = [
    "PROFILE_NAMES",
    "CostProfile",
    "NabSeries",
    "ProfileScore",
    "load_corpus",
    "load_profiles",
    "probationary_length",
    "read_results",
    "write_results",
    "scaled_sigmoid",
    "sweep_thresholds",
    "score_corpus",
    "score_detector",
]


@dataclass(frozen=True, kw_only=True)
class CostProfile:
    """One NAB application profile: the weights of a true positive, false positive and miss."""

    tp_weight: float = 1.0
    fp_weight: float = 0.11
    fn_weight: float = 1.0

    def __post_init__(self) -> None:
        for field in ("tp_weight", "fp_weight", "fn_weight"):
            value = getattr(self, field)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise ConfigError(
                    f"CostProfile.{field}: expected a finite number >= 0, got {value!r}"
                )
        if self.tp_weight == 0:
            raise ConfigError(
                "CostProfile.tp_weight: expected > 0 (it scales a perfect score), got 0"
            )


@dataclass(frozen=True, kw_only=True, eq=False)
class NabSeries:
    """One NAB data file with its label windows.

    ``timestamps`` (T,) datetime64[ns] and ``values`` (T,) float64 are read-only arrays;
    ``windows`` holds inclusive row ranges ``(first, last)``, in label order.
    """

    category: str
    name: str
    timestamps: np.ndarray
    values: np.ndarray
    windows: tuple[tuple[int, int], ...]

    def __post_init__(self) -> None:
        n = len(self.timestamps)
        if self.values.shape != (n,):
            raise DataError(
                f"{self.relative_name}: expected {n} values (one per timestamp), "
                f"got shape {self.values.shape}"
            )
        for k, (a, b) in enumerate(self.windows):
            if not 0 <= a <= b < n:
                raise DataError(
                    f"{self.relative_name}: window {k}: expected rows 0 <= first <= last < {n}, "
                    f"got ({a}, {b})"
                )
            if k and a <= self.windows[k - 1][1]:
                raise DataError(
                    f"{self.relative_name}: window {k} starts at row {a}, inside or before "
                    f"window {k - 1} (ends at row {self.windows[k - 1][1]})"
                )

    @property
    def relative_name(self) -> str:
        """``category/file.csv``, the key NAB uses for labels and results."""
        return f"{self.category}/{self.name}"

    @property
    def probation(self) -> int:
        """Number of leading rows that are not scored."""
        return probationary_length(len(self.timestamps))

    def __len__(self) -> int:
        return len(self.timestamps)


def probationary_length(n: int, percent: float = PROBATION_PERCENT) -> int:
    """NAB's probation: ``min(floor(percent * n), percent * 5000)`` rows (750 at 15 %)."""
    return int(min(math.floor(percent * n), percent * 5000))


# ----------------------------------------------------------------------------- reading


def _parse_times(raw: pd.Series, where: str) -> np.ndarray:
    try:
        parsed = pd.to_datetime(raw, format=_TIME_FORMAT)
    except (ValueError, TypeError):
        parsed = pd.to_datetime(raw, format="mixed", errors="coerce")
        bad = np.flatnonzero(parsed.isna().to_numpy())
        if len(bad):
            i = int(bad[0])
            raise DataError(
                f"{where} line {i + 2}: expected a timestamp like 2014-07-01 00:00:00, "
                f"got {raw.iloc[i]!r}"
            ) from None
    # (T,) datetime64[ns]
    return parsed.to_numpy(dtype="datetime64[ns]")


def _read_table(path: Path, columns: tuple[str, str]) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path, dtype={columns[0]: str})
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as exc:
        raise DataError(f"{path}: not a readable CSV file ({exc})") from None
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(
            f"{path}: expected columns {','.join(columns)}, got {','.join(map(str, frame.columns))}"
        )
    return frame


def _read_numbers(frame: pd.DataFrame, column: str, path: Path) -> np.ndarray:
    values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(values))
    if len(bad):
        i = int(bad[0])
        raise DataError(
            f"{path} line {i + 2}: expected a finite number in column {column}, "
            f"got {frame[column].iloc[i]!r}"
        )
    return values


def _first_rows(timestamps: np.ndarray) -> dict[int, int]:
    # nanoseconds since the epoch -> first row carrying them (NAB resolves window limits with
    # list.index, i.e. to the first row)
    keys, rows = np.unique(timestamps.astype(np.int64), return_index=True)
    return dict(zip(keys.tolist(), rows.tolist(), strict=True))


def load_profiles(nab_dir: str | Path) -> dict[str, CostProfile]:
    """Read ``config/profiles.json`` into ``{profile name: CostProfile}``."""
    path = Path(nab_dir) / "config" / "profiles.json"
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{path} line {exc.lineno}: not valid JSON ({exc.msg})") from None
    profiles = {}
    for name, body in raw.items():
        try:
            cost = body["CostMatrix"]
            profiles[name] = CostProfile(
                tp_weight=cost["tpWeight"], fp_weight=cost["fpWeight"], fn_weight=cost["fnWeight"]
            )
        except (KeyError, TypeError):
            raise DataError(
                f"{path}: profile {name!r}: expected CostMatrix with tpWeight, fpWeight, fnWeight"
            ) from None
        except ConfigError as exc:
            raise DataError(f"{path}: profile {name!r}: {exc}") from None
    return profiles


def load_corpus(nab_dir: str | Path) -> list[NabSeries]:
    """Read ``data/<category>/<file>.csv`` and ``labels/combined_windows.json`` of a NAB tree.

    Every data file needs a label entry (an empty list for a series without anomalies) and every
    label entry a data file. Series come sorted by relative name.
    """
    root = Path(nab_dir)
    data_dir = root / "data"
    labels_path = root / "labels" / "combined_windows.json"
    if not data_dir.is_dir():
        raise DataError(f"{data_dir}: expected the NAB data directory, not found")
    try:
        labels = json.loads(labels_path.read_text())
    except FileNotFoundError:
        raise DataError(f"{labels_path}: file not found") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{labels_path} line {exc.lineno}: not valid JSON ({exc.msg})") from None
    if not isinstance(labels, dict):
        raise DataError(f"{labels_path}: expected an object {{file: windows}}, got {type(labels)}")

    files = sorted(data_dir.glob("*/*.csv"))
    if not files:
        raise DataError(f"{data_dir}: expected <category>/<file>.csv files, found none")
    found = {f.relative_to(data_dir).as_posix() for f in files}
    orphans = sorted(set(labels) - found)
    if orphans:
        raise DataError(
            f"{labels_path}: labels name {orphans[0]!r} but {data_dir / orphans[0]} does not exist"
        )

    corpus = []
    for path in files:
        rel = path.relative_to(data_dir).as_posix()
        if rel not in labels:
            raise DataError(f"{labels_path}: expected an entry for {rel!r} (data file {path})")
        frame = _read_table(path, ("timestamp", "value"))
        timestamps = _parse_times(frame["timestamp"], str(path))
        values = _read_numbers(frame, "value", path)
        first = _first_rows(timestamps)
        windows = []
        for k, limits in enumerate(labels[rel]):
            if not (isinstance(limits, list | tuple) and len(limits) == 2):
                raise DataError(
                    f"{labels_path}: {rel} window {k}: expected [start, end], got {limits!r}"
                )
            rows = []
            for limit in limits:
                try:
                    key = pd.Timestamp(limit).as_unit("ns").value
                except (ValueError, TypeError):
                    raise DataError(
                        f"{labels_path}: {rel} window {k}: expected a timestamp, got {limit!r}"
                    ) from None
                if key not in first:
                    raise DataError(
                        f"{labels_path}: {rel} window {k}: limit {limit} is not a timestamp of {path}"
                    )
                rows.append(first[key])
            windows.append((rows[0], rows[1]))
        timestamps.setflags(write=False)
        values.setflags(write=False)
        corpus.append(
            NabSeries(
                category=path.parent.name,
                name=path.name,
                timestamps=timestamps,
                values=values,
                windows=tuple(windows),
            )
        )
    return corpus


def _results_path(results_dir: Path, detector: str, series: NabSeries) -> Path:
    return results_dir / detector / series.category / f"{detector}_{series.name}"


def _read_one_result(path: Path, series: NabSeries | None) -> np.ndarray:
    frame = _read_table(path, ("timestamp", "anomaly_score"))
    scores = _read_numbers(frame, "anomaly_score", path)
    if series is not None:
        if len(frame) != len(series):
            raise DataError(
                f"{path}: expected {len(series)} rows (as in data/{series.relative_name}), "
                f"got {len(frame)}"
            )
        times = _parse_times(frame["timestamp"], str(path))
        bad = np.flatnonzero(times != series.timestamps)
        if len(bad):
            i = int(bad[0])
            raise DataError(
                f"{path} line {i + 2}: expected timestamp {pd.Timestamp(series.timestamps[i])} "
                f"(as in data/{series.relative_name}), got {frame['timestamp'].iloc[i]}"
            )
    scores.setflags(write=False)
    return scores


def read_results(
    results_dir: str | Path, detector: str, corpus: Sequence[NabSeries] | None = None
) -> dict[str, np.ndarray]:
    """Read a detector's per-row anomaly scores in NAB's layout.

    Files are ``<results_dir>/<detector>/<category>/<detector>_<file>.csv`` (or ``.csv.gz``)
    with columns ``timestamp,anomaly_score`` (extra columns are ignored). With ``corpus``, every
    series must have a results file whose rows and timestamps match it; without, every file
    found is read unchecked. Returns ``{category/file.csv: (T,) float64 scores}``.
    """
    base = Path(results_dir)
    detector_dir = base / detector
    if not detector_dir.is_dir():
        raise DataError(
            f"{detector_dir}: expected the results directory of {detector!r}, not found"
        )
    out: dict[str, np.ndarray] = {}
    if corpus is None:
        prefix = f"{detector}_"
        for path in sorted(detector_dir.glob("*/*")):
            name = path.name
            if not name.startswith(prefix) or not name.endswith((".csv", ".csv.gz")):
                continue
            if name.endswith("_scores.csv"):  # NAB's per-profile summary tables
                continue
            data_name = name[len(prefix) :].removesuffix(".gz")
            out[f"{path.parent.name}/{data_name}"] = _read_one_result(path, None)
        if not out:
            raise DataError(f"{detector_dir}: expected <category>/{prefix}<file>.csv, found none")
        return out
    for series in corpus:
        plain = _results_path(base, detector, series)
        gz = plain.with_name(plain.name + ".gz")
        if plain.is_file():
            out[series.relative_name] = _read_one_result(plain, series)
        elif gz.is_file():
            out[series.relative_name] = _read_one_result(gz, series)
        else:
            raise DataError(
                f"{plain}: expected a results file for {series.relative_name} (or .gz), not found"
            )
    return out


def write_results(
    results_dir: str | Path,
    detector: str,
    series: Sequence[NabSeries],
    scores: Mapping[str, np.ndarray],
) -> list[Path]:
    """Write ``<results_dir>/<detector>/<category>/<detector>_<file>.csv`` (timestamp,anomaly_score).

    ``scores`` maps each series' relative name to its (T,) anomaly scores. Returns the paths.
    """
    if not detector or "/" in detector or "_" in detector:
        # NAB splits file names on the first "_" to recover the detector's name.
        raise ConfigError(f"detector: expected a name without '/' or '_', got {detector!r}")
    paths = []
    for s in series:
        if s.relative_name not in scores:
            raise DataError(f"scores: expected an entry for {s.relative_name}, none given")
        values = np.asarray(scores[s.relative_name], dtype=np.float64)
        if values.shape != (len(s),):
            raise DataError(
                f"scores[{s.relative_name!r}]: expected shape ({len(s)},), got {values.shape}"
            )
        if not np.isfinite(values).all():
            i = int(np.flatnonzero(~np.isfinite(values))[0])
            raise DataError(
                f"scores[{s.relative_name!r}][{i}]: expected a finite number, got {values[i]}"
            )
        path = _results_path(Path(results_dir), detector, s)
        path.parent.mkdir(parents=True, exist_ok=True)
        stamps = np.char.replace(np.datetime_as_string(s.timestamps, unit="s"), "T", " ")
        pd.DataFrame({"timestamp": stamps, "anomaly_score": values}).to_csv(path, index=False)
        paths.append(path)
    return paths


# ----------------------------------------------------------------- scoring (the rule: nab_score.py)


def score_detector(
    nab_dir: str | Path,
    results_dir: str | Path,
    detector: str,
    thresholds: Mapping[str, float] | None = None,
) -> dict:
    """Score ``<results_dir>/<detector>`` against the NAB tree at ``nab_dir``.

    Returns ``{profile: normalised score, ..., "thresholds": {profile: threshold}, "raw":
    {profile: raw score}}`` for the profiles of ``config/profiles.json`` (``standard``,
    ``reward_low_FP_rate``, ``reward_low_FN_rate``). Thresholds are optimised per profile unless
    given (``{profile: threshold}``, e.g. from NAB's ``config/thresholds.json``).
    """
    corpus = load_corpus(nab_dir)
    profiles = load_profiles(nab_dir)
    results = read_results(results_dir, detector, corpus)
    layout = _layout(corpus, results)
    out: dict = {"thresholds": {}, "raw": {}}
    for name, profile in profiles.items():
        fixed = None
        if thresholds is not None:
            if name not in thresholds:
                raise ConfigError(f"thresholds: expected a value for profile {name!r}, none given")
            fixed = thresholds[name]
        result = _score_layout(layout, profile, fixed)
        out[name] = result.normalized
        out["thresholds"][name] = result.threshold
        out["raw"][name] = result.raw
    return out
