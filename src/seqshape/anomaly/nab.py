"""The Numenta Anomaly Benchmark (NAB): corpus, detector results and the NAB scorer.

NAB (Lavin & Ahmad, "Evaluating Real-time Anomaly Detection Algorithms — the Numenta Anomaly
Benchmark", ICMLA 2015; https://github.com/numenta/NAB) is a corpus of 58 labelled univariate
series and a scoring rule that rewards *early* detection inside labelled anomaly windows.
This module is a fresh implementation of its published rule, vectorised with numpy:

* The first ``min(floor(0.15 * n), 750)`` rows of a series are probationary (NAB caps the
  probation at 15 % of 5000 rows): nothing there is scored, and a window that ends inside it
  is dropped from the score.
* A *detection* is a scored row whose anomaly score is ``>= threshold``.
* In each window ``[a, b]`` (``W = b - a + 1`` rows) only the earliest detection counts, worth
  ``tpWeight * sigma(-(b - i + 1) / W) / sigma(-1)`` with the scaled sigmoid
  ``sigma(x) = 2 / (1 + exp(5 x)) - 1`` (``sigma(x) = -1`` for ``x >= 3``): a detection on a
  window's first row earns exactly ``tpWeight``. A window with no detection costs ``fnWeight``.
* A detection outside every window costs ``fpWeight * sigma((i - b) / (W - 1))`` with ``b``
  and ``W`` of the closest window that ended before it (a small reward right after a window,
  quickly ``-fpWeight``), and exactly ``-fpWeight`` when no window precedes it.
* The raw score of a detector is summed over the corpus; each profile's threshold is chosen to
  maximise it. NAB's optimiser sweeps the distinct anomaly scores; :func:`sweep_thresholds`
  does the same exactly, in one sort and a few cumulative sums (~0.1 s for the 365k rows).
* Normalised score ``100 * (raw - null) / (perfect - null)``: ``null`` is the detector that
  never fires (``-fnWeight`` per scored window), ``perfect`` fires on each window's first row
  (``tpWeight`` per labelled window, as NAB counts it).

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


@dataclass(frozen=True, kw_only=True)
class ProfileScore:
    """The score of one detector under one profile."""

    threshold: float
    raw: float
    null: float
    perfect: float

    @property
    def normalized(self) -> float:
        """``100 * (raw - null) / (perfect - null)``: 0 for the null detector, 100 for perfect."""
        return 100.0 * (self.raw - self.null) / (self.perfect - self.null)


def probationary_length(n: int, percent: float = PROBATION_PERCENT) -> int:
    """NAB's probation: ``min(floor(percent * n), percent * 5000)`` rows (750 at 15 %)."""
    return int(min(math.floor(percent * n), percent * 5000))


def scaled_sigmoid(x: np.ndarray | float) -> np.ndarray:
    """NAB's positional weight ``2 / (1 + exp(5 x)) - 1``, exactly -1 for ``x >= 3``."""
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(over="ignore"):
        y = 2.0 / (1.0 + np.exp(5.0 * x)) - 1.0
    return np.where(x >= 3.0, -1.0, y)


_MAX_TP = float(scaled_sigmoid(-1.0))


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


# ----------------------------------------------------------------------------- scoring


@dataclass(frozen=True)
class _Layout:
    """Every scored row of a corpus, concatenated, with its window and positional weight."""

    scores: np.ndarray  # (R,) anomaly score per scored row
    window: np.ndarray  # (R,) corpus-wide window id, -1 outside every window
    position_weight: np.ndarray  # (R,) scaled sigmoid: in a window / after the previous one
    n_scored_windows: int
    n_windows: int


def _layout(corpus: Sequence[NabSeries], scores: Mapping[str, np.ndarray]) -> _Layout:
    parts_s, parts_g, parts_u = [], [], []
    next_id = 0
    scored_windows = 0
    for s in corpus:
        if s.relative_name not in scores:
            raise DataError(f"scores: expected an entry for {s.relative_name}, none given")
        x = np.asarray(scores[s.relative_name], dtype=np.float64)
        n = len(s)
        if x.shape != (n,):
            raise DataError(f"scores[{s.relative_name!r}]: expected shape ({n},), got {x.shape}")
        if not np.isfinite(x).all():
            i = int(np.flatnonzero(~np.isfinite(x))[0])
            raise DataError(
                f"scores[{s.relative_name!r}][{i}]: expected a finite number, got {x[i]}"
            )
        rows = np.arange(n)
        # (W,) first and last row of each window
        first = np.array([a for a, _ in s.windows], dtype=np.int64)
        last = np.array([b for _, b in s.windows], dtype=np.int64)
        width = (last - first + 1).astype(np.float64)
        # (T,) the window a row lies in (-1 if none) and the last window ended before it
        inside = np.searchsorted(first, rows, side="right") - 1
        before = np.searchsorted(last, rows, side="left") - 1
        in_window = np.zeros(n, dtype=bool)
        u = np.full(n, -1.0)  # no window at all: every detection is a plain false positive
        if len(first):
            k = np.clip(inside, 0, None)
            in_window = (inside >= 0) & (rows <= last[k])
            tp_pos = -(last[k] - rows + 1) / width[k]
            j = np.clip(before, 0, None)
            with np.errstate(divide="ignore", invalid="ignore"):
                fp_pos = np.where(width[j] > 1, (rows - last[j]) / (width[j] - 1), np.inf)
            fp_pos = np.where(before >= 0, fp_pos, 3.0)
            u = scaled_sigmoid(np.where(in_window, tp_pos, fp_pos))
        g = np.where(in_window, inside + next_id, -1)
        p = s.probation
        parts_s.append(x[p:])
        parts_g.append(g[p:])
        parts_u.append(u[p:])
        scored_windows += int(np.sum(last >= p))
        next_id += len(first)
    scores_all = np.concatenate(parts_s) if parts_s else np.zeros(0)
    return _Layout(
        scores=scores_all,
        window=np.concatenate(parts_g).astype(np.int64) if parts_g else np.zeros(0, np.int64),
        position_weight=np.concatenate(parts_u) if parts_u else np.zeros(0),
        n_scored_windows=scored_windows,
        n_windows=next_id,
    )


def _weights(layout: _Layout, profile: CostProfile) -> np.ndarray:
    # (R,) what each row is worth when detected: TP weight in a window, FP weight outside
    return np.where(
        layout.window >= 0,
        layout.position_weight * (profile.tp_weight / _MAX_TP),
        layout.position_weight * profile.fp_weight,
    )


def _null_and_perfect(layout: _Layout, profile: CostProfile) -> tuple[float, float]:
    return -profile.fn_weight * layout.n_scored_windows, profile.tp_weight * layout.n_windows


def _sweep(layout: _Layout, profile: CostProfile) -> tuple[np.ndarray, np.ndarray]:
    """Raw corpus score at every distinct threshold, highest threshold first (null first)."""
    w = _weights(layout, profile)
    null, _ = _null_and_perfect(layout, profile)
    # (R,) rows from the highest anomaly score down
    by_score = np.argsort(-layout.scores, kind="stable")
    s_sorted = layout.scores[by_score]
    g_sorted = layout.window[by_score]
    gain = np.where(g_sorted < 0, w[by_score], 0.0)

    # A window's value is that of its earliest detected row: walking down the thresholds, it
    # changes only when a row earlier than every detected one of its window joins.
    in_win = np.flatnonzero(g_sorted >= 0)
    if len(in_win):
        groups = g_sorted[in_win]
        rows = by_score[in_win]  # corpus row index: earlier in a series, smaller
        regroup = np.lexsort((in_win, groups))  # by window, then by sweep step
        grp = groups[regroup]
        # running earliest row within each window: offsets make each window restart the minimum
        offset = grp * (len(layout.scores) + 1)
        earliest = np.minimum.accumulate(rows[regroup] - offset) + offset
        value = w[earliest]
        previous = np.empty_like(value)
        previous[1:] = value[:-1]
        starts = np.ones(len(grp), dtype=bool)
        starts[1:] = grp[1:] != grp[:-1]
        previous[starts] = -profile.fn_weight
        gain[in_win[regroup]] = value - previous
    total = null + np.cumsum(gain)
    # a threshold t detects every row scored >= t: read the total at the end of each tie run
    ends = np.flatnonzero(np.append(s_sorted[1:] != s_sorted[:-1], True))
    top = float(s_sorted[0]) if len(s_sorted) else 0.0
    null_threshold = 1.1 if top < 1.1 else float(np.nextafter(top, np.inf))
    thresholds = np.concatenate([[null_threshold], s_sorted[ends]])
    raw = np.concatenate([[null], total[ends]])
    return thresholds, raw


def _raw_at(layout: _Layout, profile: CostProfile, threshold: float) -> float:
    w = _weights(layout, profile)
    null, _ = _null_and_perfect(layout, profile)
    hit = layout.scores >= threshold
    fp = float(np.sum(w[hit & (layout.window < 0)]))
    in_hit = np.flatnonzero(hit & (layout.window >= 0))
    # rows are in corpus order, so a window's first occurrence is its earliest detection
    _, first = np.unique(layout.window[in_hit], return_index=True)
    tp = float(np.sum(w[in_hit[first]] + profile.fn_weight))
    return null + tp + fp


def sweep_thresholds(
    corpus: Sequence[NabSeries], scores: Mapping[str, np.ndarray], profile: CostProfile
) -> tuple[np.ndarray, np.ndarray]:
    """Raw corpus score at every distinct threshold, as NAB's optimiser sweeps them.

    Returns ``(thresholds, raw)``, both (M + 1,), thresholds descending; entry 0 is a threshold
    above every score (the null detector), entry ``m`` detects every row scored ``>=
    thresholds[m]``.
    """
    return _sweep(_layout(corpus, scores), profile)


def score_corpus(
    corpus: Sequence[NabSeries],
    scores: Mapping[str, np.ndarray],
    profile: CostProfile,
    threshold: float | None = None,
) -> ProfileScore:
    """Score a detector's results under one profile, at ``threshold`` or at the best one."""
    layout = _layout(corpus, scores)
    return _score_layout(layout, profile, threshold)


def _score_layout(layout: _Layout, profile: CostProfile, threshold: float | None) -> ProfileScore:
    null, perfect = _null_and_perfect(layout, profile)
    if perfect <= null:
        raise DataError(f"corpus: expected at least one labelled window, got {layout.n_windows}")
    if threshold is None:
        thresholds, raw = _sweep(layout, profile)
        best = int(np.argmax(raw))  # ties: the highest threshold, as NAB's stable sort keeps
        return ProfileScore(
            threshold=float(thresholds[best]), raw=float(raw[best]), null=null, perfect=perfect
        )
    return ProfileScore(
        threshold=float(threshold),
        raw=_raw_at(layout, profile, float(threshold)),
        null=null,
        perfect=perfect,
    )


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
