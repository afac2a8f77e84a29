"""pandas in and out, and the aeon (n, C, T) layout, on real data."""

import numpy as np
import pandas as pd
import pytest

from seqshape import DataError, ShapeError, datasets
from seqshape.api.classifier import SequenceClassifier
from seqshape.api.forecaster import Forecaster, SeriesData
from seqshape.api.tagger import SequenceTagger

FC = dict(hidden_size=8, num_layers=1, epochs=2, progress=False, threads=1)
CLF = dict(hidden_size=8, conv_channels=8, epochs=2, batch_size=16, progress=False, threads=1)


@pytest.fixture(scope="module")
def air():
    df = pd.read_csv(datasets.path("AirPassengers.csv"))
    return pd.Series(
        df["#Passengers"].to_numpy(float), index=pd.to_datetime(df["Month"]), name="passengers"
    )


@pytest.fixture(scope="module")
def ett_long(shared_data):
    """Two ETTh1 columns as two series in neuralforecast's long layout (hourly ``ds``)."""
    df = pd.read_csv(shared_data / "forecasting/ETTh1.csv", nrows=24 * 40)
    ds = pd.to_datetime(df["date"])
    parts = [pd.DataFrame({"unique_id": col, "ds": ds, "y": df[col]}) for col in ("OT", "HUFL")]
    return pd.concat(parts, ignore_index=True)


def test_a_series_with_a_datetime_index_in_a_dataframe_with_future_timestamps_out(air):
    fc = Forecaster(horizon=12, loss="gaussian", **FC).fit(air)
    out = fc.forecast(air)
    assert isinstance(out, pd.DataFrame) and len(out) == 12
    assert out.index[0] == pd.Timestamp("1961-01-01") and out.index[-1] == pd.Timestamp(
        "1961-12-01"
    )
    assert {"passengers", "passengers_std", "passengers_lo_80", "passengers_hi_95"} <= set(out)
    assert (out["passengers_lo_80"] < out["passengers"]).all()
    assert (out["passengers"] < out["passengers_hi_80"]).all()
    # the same numbers as the array API
    arrays = fc.forecast(SeriesData(target=air.to_numpy()[:, None]), 12)
    np.testing.assert_allclose(out["passengers"].to_numpy(), arrays["point"][:, 0], rtol=1e-6)
    # a history cut short ends where it ends
    early = fc.forecast(air.iloc[:100])
    assert early.index[0] == air.index[100]


def test_the_long_layout_of_neuralforecast_one_global_model(ett_long):
    fc = Forecaster(horizon=24, season=24, **FC).fit(ett_long)
    assert fc.series_names == ["OT", "HUFL"]
    out = fc.forecast(ett_long)
    assert list(out.columns) == ["unique_id", "ds", "y"] and len(out) == 48
    last = ett_long["ds"].max()
    for uid in ("OT", "HUFL"):
        rows = out[out["unique_id"] == uid]
        assert rows["ds"].iloc[0] == last + pd.Timedelta(hours=1)
        hist = ett_long[ett_long["unique_id"] == uid]["y"].to_numpy()[:, None]
        want = fc.forecast(SeriesData(target=hist), 24, series_index=fc.series_names.index(uid))
        np.testing.assert_allclose(rows["y"].to_numpy(), want["point"][:, 0], rtol=1e-6)


def test_a_new_series_is_scaled_by_its_own_history(ett_long):
    fc = Forecaster(horizon=24, season=24, **FC).fit(ett_long)
    ot = ett_long[ett_long["unique_id"] == "OT"]
    new = ot.assign(unique_id="new")
    moved = ot.assign(unique_id="moved", y=ot["y"] * 10 + 5)
    a = fc.forecast(new)["y"].to_numpy()
    b = fc.forecast(moved)["y"].to_numpy()
    # standardised by its own mean and std, the model sees the same numbers
    np.testing.assert_allclose(b, a * 10 + 5, rtol=1e-4)


def test_frames_that_cannot_be_read_say_why(ett_long, air):
    with pytest.raises(DataError, match=r"columns \['extra'\] are neither y nor named"):
        Forecaster(**FC).fit(ett_long.assign(extra=1.0))
    with pytest.raises(DataError, match="'ds' is missing"):
        Forecaster(**FC).fit(ett_long.drop(columns="ds"))
    with pytest.raises(DataError, match="expected a DatetimeIndex"):
        Forecaster(**FC).fit(air.set_axis(air.index.strftime("%Y-%m")))
    with pytest.raises(DataError, match="column 'y' row 3: expected a finite number"):
        Forecaster(**FC).fit(ett_long.assign(y=ett_long["y"].where(ett_long.index != 3)))


@pytest.fixture(scope="module")
def vowels():
    train = datasets.load_japanese_vowels("train")
    X = train.X[::3]
    y = np.array([int(v) for v in train.y[::3]])
    return X, y


def _long(X, y):
    frames = [
        pd.DataFrame(x, columns=[f"c{j}" for j in range(x.shape[1])]).assign(
            sequence_id=f"u{i}", step=np.arange(len(x)), label=label
        )
        for i, (x, label) in enumerate(zip(X, y))
    ]
    return pd.concat(frames, ignore_index=True)


def test_the_classifier_reads_a_long_dataframe_in_any_row_order(vowels):
    X, y = vowels
    clf = SequenceClassifier(**CLF).fit(X, y)
    # steps shuffled within each sequence (`step` orders them); sequences in their first rows' order
    long = _long(X, y).sample(frac=1.0, random_state=0)
    long = long.sort_values("sequence_id", key=lambda s: s.str[1:].astype(int), kind="stable")
    np.testing.assert_allclose(clf.predict_proba(long), clf.predict_proba(X), atol=1e-6)
    again = SequenceClassifier(**CLF).fit(_long(X, y))
    assert again.classes_.tolist() == clf.classes_.tolist()
    np.testing.assert_allclose(again.predict_proba(X), clf.predict_proba(X), atol=1e-6)
    broken = _long(X, y)
    broken.loc[3, "label"] = 99
    with pytest.raises(DataError, match="sequence 'u0': the 'label' column changes"):
        SequenceClassifier(**CLF).fit(broken)


def test_channels_first_arrays_are_named_and_accepted_with_layout_nct(vowels):
    X, y = vowels
    keep = [i for i, x in enumerate(X) if len(x) >= 20]
    ntf = np.stack([X[i][:20] for i in keep])  # (n, T=20, F=12)
    nct = np.swapaxes(ntf, 1, 2)  # (n, C=12, T=20): aeon's layout
    y = y[keep]
    with pytest.raises(ShapeError, match="more features than steps.*layout='NCT'"):
        SequenceClassifier(**CLF).fit(nct, y)
    clf = SequenceClassifier(**CLF).fit(ntf, y)
    with pytest.raises(ShapeError, match="fitted on F=12.*layout='NCT'"):
        clf.predict(nct)
    nct_clf = SequenceClassifier(layout="NCT", **CLF).fit(nct, y)
    np.testing.assert_allclose(nct_clf.predict_proba(nct), clf.predict_proba(ntf), atol=1e-6)
    # layout="NTF" takes the array as it is, however it looks
    as_is = SequenceClassifier(layout="NTF", **CLF).fit(nct, y)
    assert as_is.n_features_in_ == 20


def test_the_tagger_reads_a_long_dataframe_with_per_step_labels(vowels):
    X, y = vowels
    long = _long(X, y)
    long["label"] = np.where(long["step"] < 5, "start", "rest")
    tag = SequenceTagger(hidden_size=8, epochs=2, progress=False, threads=1).fit(long)
    pred = tag.predict(long)
    assert [len(p) for p in pred] == [len(x) for x in X]
    assert tag.classes_.tolist() == ["rest", "start"]
