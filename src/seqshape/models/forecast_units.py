"""The forecaster's numbers in NumPy, without torch: which parameter is the point, parameters back
to original units, a head's standard deviation, which scaling row a series uses.

Shared by everything that turns a `ForecasterNet`'s scaled parameters into answers (the
estimator, streams, the server) and by the ONNX runtime, which must run without torch. The rules
per head live on the head objects (`seqshape.models.heads`); these functions look the head up by
its loss name. Shapes: O targets, P parameters per value.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import DataError
from .heads import head_of

__all__ = ["distribution_std", "outputs", "point_index", "series_row", "to_original"]


def point_index(loss: str, quantiles: Sequence[float] = ()) -> int:
    """Which of the P parameters is the point forecast (the mean, or the median quantile)."""
    return head_of(loss).point_index(quantiles)


def to_original(loss: str, params: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """(..., O, P) scaled parameters -> original units with the (O,) ``mean`` and ``std``: every
    location (and every quantile) is unscaled; a scale parameter is only stretched; df and a
    negative binomial's alpha stay."""
    return head_of(loss).to_original(params, mean, std)


def distribution_std(loss: str, params: np.ndarray) -> np.ndarray:
    """(..., P) parameters of a probabilistic head -> (...) standard deviations (for the t,
    scale * sqrt(df / (df - 2)); a Poisson's sqrt(rate); a negative binomial's
    sqrt(mean + alpha mean^2))."""
    return head_of(loss).std(params)


def outputs(loss: str, quantiles: Sequence[float], params: np.ndarray) -> dict:
    """(..., O, P) parameters in original units -> the answer every forecaster gives:
    {"point" (..., O), "params"} plus "quantiles" {q: (..., O)} (quantile head), "std"
    (distribution heads) and the head's named parameters ("scale", "df"; "alpha")."""
    return head_of(loss).outputs(params, quantiles)


def _names(names: Sequence[str], limit: int = 10) -> str:
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def series_row(series: int | str | None, names: Sequence[str], n_rows: int, global_: bool) -> int:
    """The scaling row of ``series`` (a name among ``names`` or an index) in a model whose scaling
    has ``n_rows`` rows (one per training series, or one for all when ``global_``).

    ``None`` is accepted when the choice cannot matter (one row); an unknown name or an index out
    of range is a DataError naming the known series, never a silent fallback to the first one.
    """
    n = len(names) if global_ else n_rows
    known = f"one of {_names(list(names))} or an index 0..{n - 1}" if names else f"0..{n - 1}"
    if series is None:
        if global_ or n_rows == 1:
            return 0
        raise DataError(
            f"series: this model scales each of its {n_rows} series on its own; expected "
            f"{known}, got none"
        )
    if isinstance(series, bool) or not isinstance(series, (int, np.integer, str)):
        raise DataError(f"series: expected a series name or index, got {series!r}")
    if isinstance(series, str):
        if series not in names:
            raise DataError(
                f"series: expected {known}, got {series!r} (not a series of this model)"
            )
        index = list(names).index(series)
    else:
        index = int(series)
        if not 0 <= index < max(n, 1):
            raise DataError(f"series: expected {known}, got {index}")
    return 0 if global_ else index
