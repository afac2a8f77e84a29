"""The Linear-looped "autoregression" mistake, measured on ETTh1 (oil temperature, hourly).

A common hand-written multi-step LSTM forecaster reads the window with an `nn.LSTM`, then makes
the horizon by applying a `Linear` layer to its own previous output, K times, never going back
through the LSTM: after the first step the "recurrence" is a linear map, so the model is a linear
extrapolation of one hidden vector. seqshape's `Forecaster` instead feeds each predicted value back
as the next *input of the LSTM* with the carried (h, c).

Both are trained here on the same windows, with the same hidden size, the same loss, the same
per-window normalisation (the last history value is subtracted) and the same number of epochs;
the script prints the test MSE of both at a few lead times, in original units (degrees C squared)
and in units of the training split's variance. Whatever comes out is what the docs quote.

    python examples/linear_loop_mistake.py            # ETT split (12/4/4 months); the docs' numbers
    python examples/linear_loop_mistake.py --small    # a quick run (the test suite runs this)
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from seqshape import DataError, Forecaster, SeriesData
from seqshape.api.forecaster import make_windows
from seqshape.data.series import ett_split

ETTH1 = Path(__file__).resolve().parents[2] / "shared" / "data" / "forecasting" / "ETTh1.csv"


def read_ot(path: Path) -> np.ndarray:
    """The OT column (the last one) of ETTh1.csv as a (T,) float32 array."""
    if not path.exists():
        raise DataError(f"{path}: not found (this example needs ../shared/data/forecasting)")
    header = path.open().readline().strip().split(",")
    if header[-1] != "OT":
        raise DataError(f"{path} line 1: expected the last column to be OT, got {header[-1]!r}")
    return np.loadtxt(path, delimiter=",", skiprows=1, usecols=len(header) - 1, dtype=np.float32)


class LinearLooped(nn.Module):
    """The mistake: LSTM over the window, then h_{k+1} = Linear(h_k) for the horizon."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.lstm = nn.LSTM(1, hidden, batch_first=True)
        self.loop = nn.Linear(hidden, hidden)  # applied to its own output, K - 1 times
        self.head = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor, k: int) -> torch.Tensor:
        # (B, N, 1) -> (B, N, H); the window is read once
        out, _ = self.lstm(x)
        # (B, N, H) -> (B, H): the state after the last history step
        h = out[:, -1]
        steps = []
        for _ in range(k):
            # (B, H) -> (B, 1)
            steps.append(self.head(h))
            # (B, H) -> (B, H): no LSTM here, only the Linear applied to its own output
            h = self.loop(h)
        # K x (B, 1) -> (B, K, 1)
        return torch.stack(steps, dim=1)


def windows(z: np.ndarray, lo: int, hi: int, n: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Windows forecasting rows in [lo, hi): history (W, N, 1), future (W, K, 1)."""
    w = make_windows([(lo, hi)], n, k)
    hist = np.stack([z[s : s + n] for s in w.start])[..., None]
    fut = np.stack([z[s + n : s + n + k] for s in w.start])[..., None]
    return hist.astype(np.float32), fut.astype(np.float32)


def fit_looped(
    z: np.ndarray, train_end: int, n: int, k: int, hidden: int, epochs: int, per_epoch: int, seed
):
    """Train the mistake with Adam on MSE over the K steps (the same windows as the Forecaster)."""
    torch.manual_seed(seed)
    model = LinearLooped(hidden)
    hist, fut = windows(z, 0, train_end, n, k)
    last = hist[:, -1:, :]
    x, y = torch.from_numpy(hist - last), torch.from_numpy(fut - last)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)
    rng = np.random.default_rng(seed)
    for _ in range(epochs):
        order = rng.permutation(len(x))[:per_epoch]
        for b in range(0, len(order), 64):
            idx = torch.from_numpy(order[b : b + 64])
            loss = nn.functional.mse_loss(model(x[idx], k), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="a quick run on 3000 rows, 8 epochs")
    parser.add_argument("--data", type=Path, default=ETTH1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)

    y = read_ot(args.data)
    if args.small:
        tr, va, te = 2000, 2400, 3000
        N, K, H, epochs, per_epoch = 48, 24, 32, 8, 1024
    else:
        tr, v, t = ett_split()
        tr, va, te = tr, tr + v, tr + v + t
        N, K, H, epochs, per_epoch = 96, 24, 64, 15, 4096
    y = y[:te]
    print(f"ETTh1 OT: train rows [0, {tr}), validation [{tr}, {va}), test [{va}, {te})")
    print(
        f"lookback N={N}, trained horizon K={K}, H={H}, {epochs} epochs of <= {per_epoch} windows"
    )

    # seqshape: predictions are fed back through the LSTM (the default strategy)
    t0 = time.perf_counter()
    fc = Forecaster(
        lookback=N,
        horizon=K,
        hidden_size=H,
        num_layers=1,
        window_norm="last",
        epochs=epochs,
        patience=epochs,
        max_windows_per_epoch=per_epoch,
        seed=args.seed,
        threads=args.threads,
    ).fit(SeriesData(target=y, name="OT"), train_end=tr, val_end=va)
    print(f"seqshape Forecaster trained in {time.perf_counter() - t0:.1f} s")

    # the mistake, scaled with the training rows' mean/std like the Forecaster
    mean, std = float(y[:tr].mean()), float(y[:tr].std())
    z = (y - mean) / std
    t0 = time.perf_counter()
    looped = fit_looped(z, tr, N, K, H, epochs, per_epoch, args.seed)
    print(f"Linear-looped LSTM trained in {time.perf_counter() - t0:.1f} s")

    # test windows, any K: the trained horizon and twice it (both models can run on)
    for k in (K, 2 * K):
        win = make_windows([(va, te)], N, k)
        # (W, k, 1) in original units
        ours = fc.predict_windows([SeriesData(target=y, name="OT")], win, k)
        hist, fut = windows(z, va, te, N, k)
        last = hist[:, -1:, :]
        with torch.no_grad():
            # (W, N, 1) -> (W, k, 1), scaled, then back to original units
            mine = looped(torch.from_numpy(hist - last), k).numpy() + last
        mine = mine * std + mean
        truth = fut * std + mean
        assert np.allclose(truth, ours["truth"], atol=1e-3)
        se_ours = ((ours["point"] - truth) ** 2)[..., 0].mean(axis=0)  # (k,) per lead time
        se_mine = ((mine - truth) ** 2)[..., 0].mean(axis=0)
        naive = ((hist[:, -1:, 0] * std + mean - truth[..., 0]) ** 2).mean(axis=0)
        print(f"\ntest, {len(win)} windows, forecasting k={k} steps (MSE in degrees C^2):")
        print(f"  {'lead':>6} {'seqshape':>10} {'linear-looped':>14} {'naive':>8} {'ratio':>6}")
        leads = [1, 6, 12, 24, 48] if k > K else [1, 6, 12, 24]
        for lead in [h for h in leads if h <= k]:
            a, b, c = se_ours[lead - 1], se_mine[lead - 1], naive[lead - 1]
            print(f"  {lead:>6} {a:>10.3f} {b:>14.3f} {c:>8.3f} {b / a:>5.2f}x")
        a, b = se_ours.mean(), se_mine.mean()
        print(
            f"  all {k} steps: seqshape MSE {a:.3f} ({a / std**2:.4f} scaled), linear-looped "
            f"{b:.3f} ({b / std**2:.4f} scaled), ratio {b / a:.2f}x"
        )


if __name__ == "__main__":
    main()
