"""The one windowing (data/windows.py): index arrays and their gathering, on ETTh1 with the usual
split; the forecaster, its backtest and the baselines' scoring all use it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seqshape.data.scaling import Scaling
from seqshape.data.series import (
    SeriesData,
    SeriesFrame,
    ett_split,
    read_series_csv,
    split_by_counts,
)
from seqshape.data.windows import count_windows, gather, make_windows
from seqshape.errors import ConfigError, DataError, ShapeError

ETT = Path("/work/shared/data/forecasting/ETTh1.csv")


@pytest.fixture(scope="module")
def ett() -> SeriesFrame:
    return read_series_csv(
        ETT, target="OT", past_covariates=["HUFL", "LULL"], future_covariates="auto"
    )


def brute_force(bounds, n: int, k: int, stride: int) -> list[tuple[int, int]]:
    """Every (series, start) whose history fits from step 0 and whose targets lie in the part."""
    out = []
    for i, (a, b) in enumerate(bounds):
        origins = [t0 for t0 in range(0, b + 1) if t0 >= n and t0 >= a and t0 + k <= b]
        out += [(i, t0 - n) for t0 in origins[::stride]]
    return out


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 40), st.integers(0, 40)).map(lambda p: (min(p), max(p))),
        min_size=1,
        max_size=4,
    ),
    st.integers(1, 6),
    st.integers(1, 6),
    st.integers(1, 4),
)
def test_windows_match_brute_force(bounds, n, k, stride):
    expect = brute_force(bounds, n, k, stride)
    got = make_windows(bounds, n, k, stride, skip_short=True)
    assert [tuple(r) for r in got.pairs().tolist()] == expect
    if not expect:  # every part too short: without skip_short that is an error
        with pytest.raises(DataError):
            make_windows(bounds, n, k, stride)
    assert count_windows(bounds, n, k, stride).sum() == len(expect)


def test_window_counts_on_the_ett_split(ett: SeriesFrame):
    sp = split_by_counts(ett, ett_split())
    n, k = 96, 24
    # Informer/Autoformer: len = border2 - border1 - N - K + 1 with border1 = part start - N
    assert len(make_windows(sp.train, n, k)) == 8640 - n - k + 1
    assert len(make_windows(sp.val, n, k)) == 2880 - k + 1
    assert len(make_windows(sp.test, n, k)) == 2880 - k + 1
    assert len(make_windows(ett.lengths, n, k)) == 17420 - n - k + 1
    assert len(make_windows(sp.train, n, k, stride=7)) == (8640 - n - k) // 7 + 1
    # the first test window reads its history from the validation part
    first = make_windows(sp.test, n, k).pairs()[0]
    assert first.tolist() == [0, 11520 - n]
    # a backtest that tiles the test part: stride = horizon
    bt = make_windows(sp.test, n, k, stride=k)
    assert len(bt) == 2880 // k and (np.diff(bt.start) == k).all()
    assert bt.start[-1] + n + k == 14400


def _arrays(frame: SeriesFrame) -> list[tuple[np.ndarray, np.ndarray]]:
    return [
        (np.concatenate([t, p], axis=1), f)
        for t, p, f in zip(frame.target, frame.past_cov, frame.future_cov)
    ]


def test_gathered_arrays_are_the_series_slices(ett: SeriesFrame):
    sp = split_by_counts(ett, ett_split())
    n, k = 48, 12
    win = make_windows(sp.test, n, k)
    hist, fut, cov = gather(_arrays(ett), win, [0, 5, 100])
    # z = [target (1), past covariates (2)]; cov = the known covariates over history and future
    assert tuple(hist.shape) == (3, n, 3) and tuple(fut.shape) == (3, k, 3)
    assert tuple(cov.shape) == (3, n + k, 4) and str(hist.dtype) == "torch.float32"
    t0 = 11520 + 100
    assert win.start[100] + n == t0
    np.testing.assert_array_equal(hist[2, :, :1].numpy(), ett.target[0][t0 - n : t0])
    np.testing.assert_array_equal(fut[2, :, :1].numpy(), ett.target[0][t0 : t0 + k])
    np.testing.assert_array_equal(hist[2, :, 1:].numpy(), ett.past_cov[0][t0 - n : t0])
    np.testing.assert_array_equal(cov[2].numpy(), ett.future_cov[0][t0 - n : t0 + k])
    # another horizon than the windows'
    assert tuple(gather(_arrays(ett), win, [0], k=5)[1].shape) == (1, 5, 3)


def test_several_series_scaled_on_their_training_parts(ett: SeriesFrame):
    # two series cut from ETTh1, of different lengths, scaled per series on their training parts
    a = SeriesData(target=ett.target[0][:500], name="a")
    b = SeriesData(target=ett.target[0][1000:1300], name="b")
    sc = Scaling.fit([a, b], [400, 200], global_=False)
    assert sc.z_mean[1, 0] == pytest.approx(ett.target[0][1000:1200].mean(), rel=1e-5)
    scaled = sc.apply([a, b])
    win = make_windows([500, 300], 24, 6, stride=5)
    assert (count_windows([500, 300], 24, 6, 5) == [(500 - 30) // 5 + 1, (300 - 30) // 5 + 1]).all()
    hist, _, _ = gather(scaled, win, np.arange(len(win)))
    for j, (i, s) in enumerate(win.pairs()):
        np.testing.assert_array_equal(hist[j].numpy(), scaled[i][0][s : s + 24])
    glob = Scaling.fit([a, b], [400, 200], global_=True)
    assert glob.z_mean.shape == (1, 1) and glob.row(1) == 0
    again = Scaling.from_dict(json.loads(json.dumps(sc.to_dict())))
    np.testing.assert_array_equal(again.apply([b], [1])[0][0], scaled[1][0])


def test_too_short_errors(ett: SeriesFrame):
    sp = split_by_counts(ett, ett_split())
    with pytest.raises(DataError) as info:
        make_windows(sp.test, 96, 3000, series_ids=ett.series_ids)
    assert str(info.value) == (
        "series 'ETTh1': part [11520, 14400) too short for one window: needs horizon 3000 "
        "steps inside it after lookback 96 steps of history, has 2880"
    )
    with pytest.raises(DataError) as info:
        make_windows([500, 30], 24, 12, series_ids=["long", "short"])
    assert str(info.value) == (
        "series 'short': too short for one window: needs lookback 24 + horizon 12 = 36 steps, has 30"
    )
    assert len(make_windows([500, 30], 24, 12, skip_short=True)) == 500 - 36 + 1
    assert len(make_windows([30, 30], 24, 12, skip_short=True)) == 0
    with pytest.raises(ConfigError, match="lookback: expected a positive integer, got 0"):
        make_windows([10], 0, 1)
    with pytest.raises(ShapeError, match=r"expected \(S,\) lengths or \(S, 2\)"):
        make_windows(np.zeros((2, 3), dtype=int), 2, 2)
