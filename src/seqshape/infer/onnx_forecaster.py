"""`OnnxForecaster`: a forecaster exported to ONNX, run with onnxruntime and numpy only (torch is
never imported). The graphs are documented in `seqshape.infer.export`; the rules that turn their
scaled parameters into answers are the head's (`seqshape.models.heads`), shared with the torch
paths.
"""

from __future__ import annotations

import os

import numpy as np

from ..api.forecast_static import static_names, vector_for
from ..data.series import check_history_length
from ..errors import ArtifactError, ConfigError, DataError, ShapeError
from ..models.heads import head_of
from .onnx_session import _float_2d, _OnnxModel, pad_batch


# -- forecaster -----------------------------------------------------------------------------------
class OnnxForecaster(_OnnxModel):
    """A forecaster exported by ``seqshape export DIR --format onnx``, run with onnxruntime.

        fc = OnnxForecaster("runs/air/model/model.onnx")     # model.step.onnx read beside it
        fc.forecast(history, k=36, future_cov=...)           # like Forecaster.forecast
        fc.forecast_scaled(histories, k)                     # like ForecasterNet.forecast

    The autoregressive strategy runs the ``encode`` graph once and the ``step`` graph K-1 times,
    each step fed the previous point forecast with the carried (h, c), so any K works; the direct
    strategy runs its one graph (K = its training horizon). Histories of different lengths share a
    batch (the graphs take their lengths); the answers do not depend on the batching.
    """

    kind = "forecaster"

    def __init__(
        self, path: str | os.PathLike, *, threads: int | None = None, batch_size: int = 256
    ) -> None:
        super().__init__(path, threads=threads, batch_size=batch_size)
        meta = self.metadata
        c = self.config
        self.strategy: str = c["strategy"]
        self.loss: str = c["loss"]
        self.quantiles: tuple[float, ...] = tuple(float(q) for q in c.get("quantiles", ()))
        self.n_targets, self.n_past, self.n_future = (
            int(c["n_targets"]),
            int(c["n_past"]),
            int(c["n_future"]),
        )
        self.n_fed = self.n_targets + self.n_past
        self.horizon = int(c["horizon"])
        self.lookback = int(c["lookback"])
        # a segment model reads exactly this many rows (its lookback up to whole segments)
        seg = int(c.get("segment", 1))
        self.segment_rows = -(-self.lookback // seg) * seg if seg > 1 else 0
        self.point_index = int(meta["point_index"])
        # P: distribution parameters per predicted value
        try:
            self.head = head_of(self.loss)
        except ConfigError as e:
            raise ArtifactError(f"{self.path}: metadata 'config': {e}") from None
        self.n_params = self.head.n_params(self.quantiles)
        sc = meta["scaling"]
        try:
            arr = lambda k: np.asarray(sc[k], dtype=np.float32).reshape(len(sc[k]), -1)  # noqa: E731
            self.z_mean, self.z_std = arr("z_mean"), arr("z_std")
            self.f_mean, self.f_std = arr("f_mean"), arr("f_std")
            self.global_scaling = bool(sc["global_"])
        except (KeyError, TypeError, ValueError) as e:
            raise ArtifactError(f"{self.path}: metadata 'scaling' is damaged ({e})") from None
        self.series_names: list[str] = list(meta.get("series_names") or [])
        self.meta: dict = dict(meta.get("meta") or {})
        # static covariates: the last C_s known covariates, appended here from the fitted table
        self.statics_: dict = dict(meta.get("statics") or {})
        self.n_static = len(static_names(self))
        if self.strategy != "direct":
            names = lambda part, io: [t["name"] for t in meta["parts"][part][io]]  # noqa: E731
            self._encode_out = names("encode", "outputs")
            self._carried = [
                n for n in names("step", "inputs") if n not in ("z", "f_next", "offset")
            ]
            self._carried_next = [f"{n}_next" for n in self._carried]

    # -- scaled units, like ForecasterNet.forecast ------------------------------------------------
    def forecast_scaled(self, history, k: int, future_cov=None) -> np.ndarray:
        """Forecast ``k`` steps -> (B, K, O+Cp, P) parameters, scaled units.

        ``history``: (B, N, O+Cp) or a list of (N_i, O+Cp) scaled arrays (any N_i >= 1);
        ``future_cov`` (Cf > 0): (B, N+K, Cf) or a list of (N_i+K, Cf), the known covariates of
        every history and forecast row, as `ForecasterNet.forecast` takes them.
        """
        if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
            raise ShapeError(f"K: expected a horizon >= 1, got {k!r}")
        k = int(k)
        hists = [_float_2d(h, f"history[{i}]") for i, h in enumerate(history)]
        if not hists:
            raise ShapeError("history: expected at least one history, got none")
        for i, h in enumerate(hists):
            if h.shape[1] != self.n_fed or len(h) < 1:
                raise ShapeError(
                    f"history[{i}]: expected (N >= 1, Z={self.n_fed}) (targets + past "
                    f"covariates), got {h.shape}"
                )
        covs: list[np.ndarray] = []
        if self.n_future:
            if future_cov is None:
                raise ShapeError(
                    f"future_cov: expected (B, N+K, Cf={self.n_future}) known covariates, got None"
                )
            covs = [_float_2d(f, f"future_cov[{i}]") for i, f in enumerate(future_cov)]
            if len(covs) != len(hists):
                raise ShapeError(
                    f"future_cov: expected one array per history ({len(hists)}), got {len(covs)}"
                )
            for i, (h, f) in enumerate(zip(hists, covs)):
                if f.shape != (len(h) + k, self.n_future):
                    raise ShapeError(
                        f"future_cov[{i}]: expected (N+K={len(h) + k}, Cf={self.n_future}), "
                        f"got {f.shape}"
                    )
        if self.strategy == "direct" and k != self.horizon:
            return self._direct_blocks(hists, covs, k)
        if self.segment_rows:
            # as ForecasterNet.fit_length: the last rows, or the first repeated in front
            rows = self.segment_rows
            covs = [_to_rows(f, len(f) - len(h) + rows) for h, f in zip(hists, covs)]
            hists = [_to_rows(h, rows) for h in hists]
        n = len(hists)
        out = np.empty((n, k, self.n_fed, self.n_params), dtype=np.float32)
        order = np.argsort([len(h) for h in hists], kind="stable")
        for start in range(0, n, self.batch_size):
            idx = order[start : start + self.batch_size]
            out[idx] = self._run([hists[i] for i in idx], [covs[i] for i in idx] if covs else [], k)
        return out

    def _direct_blocks(self, hists: list, covs: list, k: int) -> np.ndarray:
        """Any k from a direct graph, as `ForecasterNet._direct_blocks`: K steps at a time, each
        block's points appended to the history (its length kept), covariates past the last
        requested step repeating the last given row."""
        K, blocks, done = self.horizon, [], 0
        while done < k:
            block_covs = []
            for h, f in zip(hists, covs):
                rows = f[done : done + len(h) + K]
                pad = np.repeat(rows[-1:], len(h) + K - len(rows), axis=0)
                block_covs.append(np.concatenate([rows, pad]))
            p = self.forecast_scaled(hists, K, block_covs if covs else None)
            blocks.append(p)
            point = self.head.outputs(p, self.quantiles)["point"]  # (B, K, Z)
            hists = [np.concatenate([h, point[i]])[-len(h) :] for i, h in enumerate(hists)]
            done += K
        return np.concatenate(blocks, axis=1)[:, :k]

    def _run(self, hists: list[np.ndarray], covs: list[np.ndarray], k: int) -> np.ndarray:
        x, lengths = pad_batch(hists)
        feeds = {"history": x, "lengths": lengths}
        B, Cf = len(hists), self.n_future
        ahead = np.zeros((B, k, Cf), dtype=np.float32)
        if Cf:
            # rows 1..N_i: each history step's input carries the next row's known covariates
            feeds["future_cov"] = pad_batch([f[1 : len(h) + 1] for h, f in zip(hists, covs)])[0]
            # (B, K, Cf): the covariates of the K forecast rows N_i..N_i+K-1
            ahead = np.stack([f[len(h) :] for h, f in zip(hists, covs)])
        if self.strategy == "direct":
            if Cf:
                feeds["horizon_cov"] = ahead
            (params,) = self.sessions["direct"].run(["params"], feeds)
            return params
        got = dict(zip(self._encode_out, self.sessions["encode"].run(self._encode_out, feeds)))
        params, z = [got["params"]], got["point"]
        # what each step carries: h[, c][, recent] (the highway's window)
        state = {n: got[n] for n in self._carried}
        step, out_names = self.sessions["step"], ["params", "point", *self._carried_next]
        for j in range(1, k):
            feeds = {"z": z, "offset": got["offset"], **state}
            if Cf:
                feeds["f_next"] = ahead[:, j]
            p, z, *new = step.run(out_names, feeds)
            state = dict(zip(self._carried, new))
            params.append(p)
        # K x (B, Z, P) -> (B, K, Z, P)
        return np.stack(params, axis=1)

    # -- original units, like Forecaster.forecast -------------------------------------------------
    def _row(self, series_index: int) -> int:
        if self.global_scaling:
            return 0
        if not 0 <= series_index < len(self.z_mean):
            raise ConfigError(
                f"series_index: expected 0..{len(self.z_mean) - 1} ({self.series_names}), "
                f"got {series_index}"
            )
        return series_index

    def _arrays(
        self, history, name: str, allow_short: bool = False
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A SeriesData-like history (or a target array) -> target (N, O), past (N, Cp), known
        covariates (N, Cf)."""
        if isinstance(history, np.ndarray) or isinstance(history, list):
            target, past, fut = _float_2d(history, f"{name}.target"), None, None
        else:
            name = getattr(history, "name", name)
            target = _float_2d(history.target, f"{name}.target")
            past, fut = getattr(history, "past_cov", None), getattr(history, "future_cov", None)
        N = len(target)
        check_history_length(name, N, self.lookback, allow_short)
        past = np.zeros((N, 0), np.float32) if past is None else _float_2d(past, f"{name}.past_cov")
        fut = np.zeros((N, 0), np.float32) if fut is None else _float_2d(fut, f"{name}.future_cov")
        got = (target.shape[1], past.shape[1], fut.shape[1])
        cu = self.n_future - self.n_static
        if got != (self.n_targets, self.n_past, cu) or len(past) != N or len(fut) != N:
            raise ShapeError(
                f"{name}: expected (O={self.n_targets}, Cp={self.n_past}, Cf={cu}) "
                f"columns over {N} rows, got {got} over ({N}, {len(past)}, {len(fut)}) rows"
            )
        return target, past, fut

    def forecast_many(
        self,
        histories: list,
        k: int,
        *,
        series_index: int | list[int] = 0,
        future_cov: list | None = None,
        allow_short: bool = False,
    ) -> list[dict]:
        """`forecast` for many histories at once (batched, any lengths of at least ``lookback``,
        or fewer with ``allow_short``); one dict per history."""
        n = len(histories)
        rows = [series_index] * n if isinstance(series_index, (int, np.integer)) else series_index
        if len(rows) != n:
            raise ConfigError(f"series_index: expected one per history ({n}), got {len(rows)}")
        cu = self.n_future - self.n_static  # the caller's known covariates
        if cu and future_cov is None:
            raise DataError(
                f"future_cov: this model uses {cu} known covariates; give their K={k} future rows"
            )
        zs, fs, scale_rows = [], [], []
        for i, h in enumerate(histories):
            target, past, fut = self._arrays(h, f"histories[{i}]", allow_short)
            r = self._row(int(rows[i]))
            scale_rows.append(r)
            # (N, O+Cp) scaled with the series' own statistics, float32 as in training
            zs.append((np.concatenate([target, past], 1) - self.z_mean[r]) / self.z_std[r])
            if self.n_future:
                ahead = _float_2d(future_cov[i], "future_cov") if cu else np.zeros((k, 0))
                if ahead.shape != (k, cu):
                    raise ShapeError(f"future_cov: expected (K={k}, Cf={cu}), got {ahead.shape}")
                if self.n_static:  # the series' statics on every row, history and ahead
                    own = h if getattr(h, "static", None) is not None else None
                    vec = vector_for(self, own, int(rows[i]))
                    fut = np.concatenate([fut, np.broadcast_to(vec, (len(fut), len(vec)))], 1)
                    ahead = np.concatenate([ahead, np.broadcast_to(vec, (k, len(vec)))], 1)
                fs.append((np.concatenate([fut, ahead]) - self.f_mean[r]) / self.f_std[r])
        params = self.forecast_scaled(zs, k, fs if self.n_future else None)
        O = self.n_targets
        results = []
        for p, r in zip(params, scale_rows):
            # (K, O, P) in scaled units -> original units, as every forecaster answers
            orig = self.head.to_original(p[:, :O], self.z_mean[r, :O], self.z_std[r, :O])
            results.append(self.head.outputs(orig, self.quantiles))
        return results

    def forecast(
        self,
        history,
        k: int,
        *,
        series_index: int = 0,
        future_cov: np.ndarray | None = None,
        allow_short: bool = False,
    ) -> dict:
        """Forecast ``k`` steps after the end of ``history`` (original units), as
        `Forecaster.forecast` does: {"point": (K, O), "params": (K, O, P)} plus "quantiles"
        {q: (K, O)} for a quantile head and "std" for a Gaussian or Student-t head.

        ``history``: a `SeriesData` (or any object with ``target``, ``past_cov``, ``future_cov``)
        or a (N, O) target array; ``future_cov`` (K, Cf) the known covariates of the K rows.
        """
        fc = None if future_cov is None else [future_cov]
        return self.forecast_many(
            [history], k, series_index=series_index, future_cov=fc, allow_short=allow_short
        )[0]


def _to_rows(x: np.ndarray, n: int) -> np.ndarray:
    """(T, F) -> (n, F): the last n rows, the first repeated in front when T < n."""
    if len(x) >= n:
        return x[len(x) - n :]
    return np.concatenate([np.repeat(x[:1], n - len(x), axis=0), x])
