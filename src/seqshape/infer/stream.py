"""Streaming forecasts from a fitted `Forecaster`: one new row in, one LSTM cell step, the next
forecast out.

    fc = Forecaster.load("runs/shops")
    stream = ForecastStream(fc, series="shop_2")      # that series' own scaling
    out = stream.update(y_new)                        # {"point": (P, O), "residual", "next", ...}
    stream.forecast(12)                               # the next 12 rows, from where it stands
    saved = stream.state()                            # a JSON-safe dict (json.dumps it)
    stream = ForecastStream.from_state(fc, saved)     # ... and it continues exactly there

A stream reads the rows of one series, oldest first, in original units: ``target`` (P, O),
``past_cov`` (P, Cp), ``future_cov`` (P, Cf), each row's own values and known covariates
(legend: O targets, Cp past covariates, Cf known covariates, Z = O+Cp values fed back, N the
model's lookback, p its highway, P parameters per value).

- The first ``need`` rows are buffered and get no forecast: N for window_norm "last"/"mean" (the
  window level is fixed from them and kept for the rest of the stream), else 1. One encoder pass
  then reads them (`ForecasterNet.begin`).
- Every later row costs one `ForecasterNet.step`: the LSTM is fed the previous value with the known
  covariates of the row it predicts. So a model with known covariates feeds row t when row t+1
  brings its covariates (its buffer holds N+1 rows at the start).
- ``update`` answers, per row, the one-step forecast made for it before it arrived ("point", its
  distribution, "residual") and, for models without known covariates, the forecast of the row
  after it ("next"; it would need that row's covariates otherwise). ``has_point`` / ``has_next``
  say which rows have them (the others hold NaN).

These numbers equal one teacher-forced batch pass over the same rows (`ForecasterNet.forward`
with the first ``need`` rows as its history; tested <= 1e-5 for every head). A stream's position
is a value, `StreamState`, whose tensors are never changed in place: ``state()`` writes it as
plain JSON (float32 numbers as lists, exact), ``from_state`` reads it back, and ``copy()`` is a
cheap independent stream (what a server keeps per client).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..api.forecast_static import extend_future, static_names, vector_for
from ..errors import ConfigError, DataError, ShapeError
from ..models.encoder import CELLS, State
from ..models.forecast_units import outputs, series_row, to_original
from ..models.forecaster import ForecasterNet

__all__ = ["ForecastStream", "StreamState", "advance"]

STATE_KIND = "ForecastStream"
STATE_VERSION = 1


@dataclass(frozen=True)
class StreamState:
    """Where a stream stands. Tensors are never changed in place, so a state can be kept, shared
    and restored freely; all but the buffer have a leading batch axis of 1."""

    series: int  # the scaling row of the stream's series
    seen: int  # rows read so far
    buffer: Tensor  # (n, Z+Cf) scaled rows waiting for the window to fill
    offset: Tensor | None = None  # (1, Z) the window level, fixed once the window is read
    hc: State | None = None  # (h[, c]) each (L, 1, H), once the window is read
    recent: Tensor | None = None  # (1, p, Z) the highway's window (with a highway)
    ahead: Tensor | None = None  # (1, Z, P) the next row's parameters (Cf = 0), at the level
    pending: Tensor | None = None  # (1, Z) the newest value, fed with the next row's covariates


def advance(
    net: ForecasterNet, state: StreamState, rows: Tensor, need: int
) -> tuple[StreamState, list[Tensor | None], list[Tensor | None]]:
    """Read scaled rows (P, Z+Cf) -> (the new state, per row the (1, Z, P) parameters of the
    forecast made for it or None, per row those of the next row or None); both relative to the
    window level (``state.offset``). ``state`` itself is left as it was."""
    c = net.config
    Z, Cf = c.n_fed, c.n_future
    s = state
    buf, off, hc, recent, ahead, pending = (
        s.buffer, s.offset, s.hc, s.recent, s.ahead, s.pending
    )  # fmt: skip
    made: list[Tensor | None] = [None] * len(rows)
    nxt: list[Tensor | None] = [None] * len(rows)
    with torch.no_grad():
        for i in range(len(rows)):
            # (1, Z+Cf): this row's values and its known covariates
            row = rows[i : i + 1]
            if hc is None:
                buf = torch.cat([buf, row])
                if len(buf) < need + (1 if Cf else 0):
                    continue
                # (1, need, Z): the window that fixes the level, read by one encoder pass; with
                # Cf its input steps carry the covariates of rows 1..need (the last one is this row)
                hist = buf[None, :need, :Z]
                off = net.offset(hist)[:, 0]
                p, hc, recent = net.begin(hist - off[:, None], buf[None, :, Z:] if Cf else None)
                buf = buf[:0]
                if Cf:
                    made[i], pending = p, row[:, :Z] - off
                else:
                    nxt[i] = ahead = p
                continue
            # (1, Z): this row's value relative to the level
            z = row[:, :Z] - off
            if Cf:
                # the previous value, fed with this row's covariates, predicts this row
                made[i], hc, recent = net.step(pending, row[:, Z:], hc, recent)
                pending = z
            else:
                made[i] = ahead
                ahead, hc, recent = net.step(z, None, hc, recent)
                nxt[i] = ahead
    new = replace(
        s, seen=s.seen + len(rows), buffer=buf, offset=off, hc=hc, recent=recent, ahead=ahead,
        pending=pending,
    )  # fmt: skip
    return new, made, nxt


def _float64_2d(a: Any, name: str, columns: int) -> np.ndarray:
    """(P,) or (P, columns) finite numbers -> (P, columns) float64; errors name ``name``."""
    try:
        arr = np.asarray(a, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise DataError(f"{name}: expected (P, {columns}) numbers ({e})") from None
    if arr.ndim == 1 and columns == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[1] != columns:
        raise ShapeError(f"{name}: expected (P, {columns}) rows, got shape {arr.shape}")
    bad = np.argwhere(~np.isfinite(arr))
    if len(bad):
        raise DataError(f"{name}[{int(bad[0][0])}]: expected finite numbers, got NaN or inf")
    return arr


class ForecastStream:
    """One series of a fitted `Forecaster`, read a row at a time (see the module docstring).

    ``forecaster``: any fitted object with ``net`` (`ForecasterNet`), ``config``, ``scaling`` and
    ``series_names`` (`seqshape.api.forecaster.Forecaster`); ``series``: the series' name or index
    (its scaling row; may be left out when the model has one scaling for all).
    """

    def __init__(self, forecaster, series: int | str | None = None) -> None:
        net = getattr(forecaster, "net", None)
        if net is None:
            raise ConfigError("forecaster: not fitted yet; fit() or load() it before streaming")
        c = forecaster.config
        if c.strategy != "autoregressive":
            raise ConfigError(
                f"strategy: streams step one row at a time and need 'autoregressive'; this model "
                f"forecasts a whole window at once ({c.strategy!r})"
            )
        sc = forecaster.scaling
        self.forecaster, self.net, self.config = forecaster, net.eval(), c
        self.series_names = list(forecaster.series_names)
        self.need = c.lookback if c.window_norm != "none" else 1
        row = series_row(series, self.series_names, len(sc.z_mean), sc.global_)
        self._state = StreamState(series=row, seen=0, buffer=torch.zeros(0, c.input_size))
        self._set_scaling(row)
        # (C_s,): the series' static covariates, appended to every row's known covariates
        self.static = None
        self.static_index: int | None = None  # the training series whose statics it reads
        if static_names(forecaster):
            named = isinstance(series, str) and series in self.series_names
            idx = self.series_names.index(series) if named else series
            idx = row if idx is None or isinstance(idx, str) else int(idx)
            self.static = vector_for(forecaster, None, idx).astype(np.float64)
            self.static_index = idx

    def _set_scaling(self, row: int) -> None:
        sc = self.forecaster.scaling
        # (Z + Cf,): the scaling of one full row [values, known covariates] of this series
        self.mean = np.concatenate([sc.z_mean[row], sc.f_mean[row]]).astype(np.float64)
        self.std = np.concatenate([sc.z_std[row], sc.f_std[row]]).astype(np.float64)

    # -- where it stands -----------------------------------------------------------------------
    @property
    def series(self) -> int:
        """The scaling row of the stream's series."""
        return self._state.series

    @property
    def seen(self) -> int:
        return self._state.seen

    @property
    def position(self) -> StreamState:
        """The stream's state as a value (see `StreamState`)."""
        return self._state

    def copy(self) -> ForecastStream:
        """An independent stream at the same position (the state is shared, never mutated)."""
        return copy.copy(self)

    # -- reading rows --------------------------------------------------------------------------
    def update(self, target: Any, past_cov: Any = None, future_cov: Any = None) -> dict:
        """Read P rows (original units) -> {"point" (P, O): the forecast made for each row before
        it arrived, "params" (P, O, P) (+ "quantiles", "std", "scale", "df" as the head has
        them), "residual" (P, O), "next" (P, O): the forecast of the row after each (models
        without known covariates), "has_point", "has_next" (P,) bool}; NaN where there is none."""
        c = self.config
        t = _float64_2d(target, "target", c.n_targets)
        parts = [t]
        cs = 0 if self.static is None else len(self.static)
        for name, a, n in (
            ("past_cov", past_cov, c.n_past),
            ("future_cov", future_cov, c.n_future - cs),
        ):
            if n == 0:
                if a is not None and np.size(a):
                    raise ShapeError(f"{name}: this model has none; expected nothing, got some")
                continue
            if a is None:
                raise DataError(
                    f"{name}: this model uses {n}; give them for each of the {len(t)} rows"
                )
            a = _float64_2d(a, name, n)
            if len(a) != len(t):
                raise ShapeError(f"{name}: expected {len(t)} rows like target, got {len(a)}")
            parts.append(a)
        if cs:  # (P, C_s): the series' statics, the same on every row
            parts.append(np.broadcast_to(self.static[None, :], (len(t), cs)))
        return self.update_rows(np.concatenate(parts, axis=1))

    def update_rows(self, rows: Any, *, name: str = "rows") -> dict:
        """`update` with whole rows (P, Z+Cf) = [targets, past covariates, known covariates]."""
        c = self.config
        x = _float64_2d(rows, name, c.input_size)
        with np.errstate(over="ignore"):
            scaled = ((x - self.mean) / self.std).astype(np.float32)
        if not np.isfinite(scaled).all():
            j = int(np.argwhere(~np.isfinite(scaled))[0][0])
            raise DataError(f"{name}[{j}]: out of range once scaled by the series' scaling")
        state, made, nxt = advance(self.net, self._state, torch.from_numpy(scaled), self.need)
        res = outputs(c.loss, c.quantiles, self._unscaled(made, state.offset))
        res["residual"] = x[:, : c.n_targets] - res["point"]
        res["next"] = outputs(c.loss, c.quantiles, self._unscaled(nxt, state.offset))["point"]
        res["has_point"] = np.array([p is not None for p in made], dtype=bool)
        res["has_next"] = np.array([p is not None for p in nxt], dtype=bool)
        self._state = state
        return res

    def _unscaled(self, params: list[Tensor | None], offset: Tensor | None) -> np.ndarray:
        """Per row (1, Z, P) parameters at the level or None -> (P, O, P) original units, NaN
        where None."""
        c = self.config
        O = c.n_targets
        out = np.full((len(params), O, c.n_params), np.nan)
        for i, p in enumerate(params):
            if p is not None:
                # (1, Z, P) + the level (1, Z) -> (O, P)
                out[i] = self.net.unshift(p, offset)[0, :O].numpy()
        return to_original(c.loss, out, *self._target_scaling())

    # -- forecasting from here -----------------------------------------------------------------
    def forecast(self, k: int, future_cov: Any = None) -> dict:
        """The next ``k`` rows from where the stream stands (it does not move): {"point" (K, O),
        "params" (K, O, P)} plus "quantiles" / "std" / "scale", "df" as the head has them, in
        original units. ``future_cov`` (K, Cf): the known covariates of those rows."""
        c = self.config
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ShapeError(f"K: expected a horizon >= 1, got {k!r}")
        k = int(k)
        fut = None
        if self.static is not None:  # (K, Cf_user) + the statics -> (K, Cf)
            future_cov = extend_future(self.forecaster, self.static, future_cov, k)
        if c.n_future:
            if future_cov is None:
                raise DataError(f"future_cov: this model uses {c.n_future}; give their K={k} rows")
            f = _float64_2d(future_cov, "future_cov", c.n_future)
            if len(f) != k:
                raise ShapeError(f"future_cov: expected (K={k}, Cf={c.n_future}), got {f.shape}")
            Z = c.n_fed
            # (K, Cf) -> (1, K, Cf) scaled like the stream's rows
            fut = torch.from_numpy(((f - self.mean[Z:]) / self.std[Z:]).astype(np.float32))[None]
        elif future_cov is not None and np.size(future_cov):
            raise ShapeError("future_cov: this model has no known covariates; expected none")
        s, net = self._state, self.net
        with torch.no_grad():
            if s.hc is None:
                if not (c.n_future and len(s.buffer) == self.need):
                    raise DataError(
                        f"stream: {s.seen} row(s) read; a forecast needs the first {self.need} "
                        f"(the window that {'fixes the level' if self.need > 1 else 'starts it'})"
                    )
                # the window not read yet (it waits for the next row's covariates): read it now,
                # its level from the same rows the stream would use
                Z = c.n_fed
                cov = torch.cat([s.buffer[None, :, Z:], fut], dim=1)
                params = net.forecast(s.buffer[None, :, :Z], k, cov)
            else:
                if c.n_future:
                    p, hc, recent = net.step(s.pending, fut[:, 0], s.hc, s.recent)
                else:
                    p, hc, recent = s.ahead, s.hc, s.recent
                params, _ = net.rollout(p, hc, recent, k, fut)
                params = net.unshift(params, s.offset[:, None])
        O = c.n_targets
        # (1, K, Z, P) -> (K, O, P) in original units
        orig = to_original(
            c.loss, params[0, :, :O].numpy().astype(np.float64), *self._target_scaling()
        )
        return outputs(c.loss, c.quantiles, orig)

    def _target_scaling(self) -> tuple[np.ndarray, np.ndarray]:
        O = self.config.n_targets
        return self.mean[:O], self.std[:O]

    # -- saving and restoring ------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """The stream's state as plain JSON (numbers, lists, null); see `from_state`."""
        s = self._state
        # (1, ...) -> nested lists without the batch axis; (L, 1, H) -> (L, H)
        flat = lambda t: None if t is None else t[0].tolist()  # noqa: E731
        return {
            "kind": STATE_KIND,
            "version": STATE_VERSION,
            "series": s.series,
            # which series' statics (under one global scaling the scaling row does not say)
            **({"static_series": self.static_index} if self.static is not None else {}),
            "seen": s.seen,
            "buffer": s.buffer.tolist(),
            "offset": flat(s.offset),
            # the cell's state tensors by name ("h", and "c" for the LSTM), (L, 1, H) -> (L, H)
            **{
                name: None if s.hc is None else s.hc[j][:, 0].tolist()
                for j, name in enumerate(CELLS[self.config.cell].state_names)
            },
            "recent": flat(s.recent),
            "ahead": flat(s.ahead),
            "pending": flat(s.pending),
        }

    @classmethod
    def from_state(cls, forecaster, state: Any) -> ForecastStream:
        """A stream of ``forecaster`` at the position ``state`` (from `state`); ConfigError naming
        the field when it does not fit this model."""
        if not isinstance(state, dict) or state.get("kind") != STATE_KIND:
            raise ConfigError(f"stream state: expected a {STATE_KIND} state (a dict)")
        if state.get("version") != STATE_VERSION:
            raise ConfigError(
                f"stream state: version: expected {STATE_VERSION}, got {state.get('version')!r}"
            )
        key = "static_series" if state.get("static_series") is not None else "series"
        stream = cls(forecaster, _checked_int(state, key, 0, 2**31))
        stream._state = _state_from_dict(stream, state)
        return stream


def _checked_int(d: dict, key: str, low: int, high: int) -> int:
    v = d.get(key)
    if isinstance(v, bool) or not isinstance(v, int) or not low <= v < high:
        raise ConfigError(f"stream state: {key}: expected an integer in [{low}, {high}), got {v!r}")
    return v


def _tensor(d: dict, key: str, shape: tuple[int, ...], required: bool) -> Tensor | None:
    """d[key] as a float32 tensor of ``shape`` with a batch axis of 1 in front (None: absent)."""
    v = d.get(key)
    if v is None:
        if required:
            raise ConfigError(f"stream state: {key}: expected numbers of shape {shape}, got none")
        return None
    if not required:
        raise ConfigError(f"stream state: {key}: expected none at this position, got some")
    try:
        t = torch.tensor(v, dtype=torch.float32)
    except (TypeError, ValueError, RuntimeError, OverflowError) as e:
        raise ConfigError(f"stream state: {key}: expected numbers of shape {shape} ({e})") from None
    if t.numel() == 0 and math.prod(shape) == 0:
        t = t.reshape(shape)
    if tuple(t.shape) != shape or not torch.isfinite(t).all():
        raise ConfigError(
            f"stream state: {key}: expected finite numbers of shape {shape}, got shape "
            f"{tuple(t.shape)}"
        )
    return t[None]


def _state_from_dict(stream: ForecastStream, d: dict) -> StreamState:
    c = stream.config
    Z, W, P = c.n_fed, c.input_size, c.n_params
    L, H = c.num_layers, c.hidden_size
    started = d.get("h") is not None
    n_buf = len(d["buffer"]) if isinstance(d.get("buffer"), list) else -1
    most = 0 if started else stream.need + (1 if c.n_future else 0) - 1
    if not 0 <= n_buf <= most:
        raise ConfigError(f"stream state: buffer: expected a list of at most {most} rows")
    buffer = _tensor(d, "buffer", (n_buf, W), True)[0]
    hc = None
    if started:
        hc = tuple(_tensor(d, name, (L, H), True)[0][:, None] for name in CELLS[c.cell].state_names)
    return StreamState(
        series=stream.series,
        seen=_checked_int(d, "seen", n_buf, 2**62),
        buffer=buffer,
        offset=_tensor(d, "offset", (Z,), started),
        hc=hc,
        recent=_tensor(d, "recent", (c.highway, Z), started and bool(c.highway)),
        ahead=_tensor(d, "ahead", (Z, P), started and not c.n_future),
        pending=_tensor(d, "pending", (Z,), started and bool(c.n_future)),
    )
