"""Window index arrays and their gathering, on ETTh1 with the usual split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seqshape.data.series import (
    SeriesFrame,
    SeriesScaler,
    ett_split,
    from_arrays,
    read_series_csv,
    split_by_counts,
)
from seqshape.data.windows import (
    WindowDataset,
    backtest_windows,
    count_windows,
    make_windows,
)
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
    got = make_windows(bounds, n, k, stride, skip_short=True) if expect else None
    if not expect:
        with pytest.raises(DataError):
            make_windows(bounds, n, k, stride, skip_short=True)
        return
    assert [tuple(r) for r in got.tolist()] == expect
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
    first = make_windows(sp.test, n, k)[0]
    assert first.tolist() == [0, 11520 - n]
    bt = backtest_windows(sp.test, n, k)
    assert len(bt) == 2880 // k and (np.diff(bt[:, 1]) == k).all()
    assert bt[-1, 1] + n + k == 14400


def test_gathered_arrays_are_the_frame_slices(ett: SeriesFrame):
    sp = split_by_counts(ett, ett_split())
    n, k = 48, 12
    ds = WindowDataset(ett, make_windows(sp.test, n, k), n, k)
    batch = ds.gather([0, 5, 100])
    assert len(batch) == 3
    assert batch.history_target.shape == (3, n, 1)
    assert batch.history_past.shape == (3, n, 2)
    assert batch.history_future.shape == (3, n, 4)
    assert batch.future_target.shape == (3, k, 1)
    assert batch.future_cov.shape == (3, k, 4)
    t0 = 11520 + 100
    assert batch.origin[2] == t0
    np.testing.assert_array_equal(batch.history_target[2], ett.target[0][t0 - n : t0])
    np.testing.assert_array_equal(batch.future_target[2], ett.target[0][t0 : t0 + k])
    np.testing.assert_array_equal(batch.history_past[2], ett.past_cov[0][t0 - n : t0])
    np.testing.assert_array_equal(batch.history_future[2], ett.future_cov[0][t0 - n : t0])
    np.testing.assert_array_equal(batch.future_cov[2], ett.future_cov[0][t0 : t0 + k])
    tensors = batch.tensors()
    assert tuple(tensors["future_cov"].shape) == (3, k, 4)
    assert str(tensors["history_target"].dtype) == "torch.float32"


def test_several_series_and_batches(ett: SeriesFrame):
    # two series cut from ETTh1, of different lengths, scaled per series on their training parts
    a, b = ett.target[0][:500], ett.target[0][1000:1300]
    frame = from_arrays([a, b], series_ids=["a", "b"], calendar=True)
    scaled = SeriesScaler().fit(frame, [400, 200]).transform(frame)
    win = make_windows(frame.lengths, 24, 6, stride=5)
    assert (
        count_windows(frame.lengths, 24, 6, 5) == [(500 - 30) // 5 + 1, (300 - 30) // 5 + 1]
    ).all()
    ds = WindowDataset(scaled, win, 24, 6)
    seen = []
    for batch in ds.batches(32, shuffle=True, seed=3):
        assert len(batch) <= 32
        for i, s, h in zip(batch.series_idx, batch.origin, batch.history_target):
            np.testing.assert_array_equal(h, scaled.target[i][s - 24 : s])
            seen.append((int(i), int(s)))
    assert sorted(seen) == sorted((int(i), int(s) + 24) for i, s in win)
    assert sum(len(b) for b in ds.batches(32, drop_last=True)) == len(win) // 32 * 32


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
    with pytest.raises(ConfigError, match="lookback: expected a positive integer, got 0"):
        make_windows([10], 0, 1)
    with pytest.raises(ShapeError, match=r"expected \(S,\) lengths or \(S, 2\)"):
        make_windows(np.zeros((2, 3), dtype=int), 2, 2)
    with pytest.raises(DataError, match=r"windows\[0\]: series 'ETTh1' has 17420 steps"):
        WindowDataset(ett, np.array([[0, 17400]]), 24, 12)
