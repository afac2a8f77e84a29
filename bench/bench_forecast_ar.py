"""Autoregressive forecasting: carried state (seqshape) against re-running the window for each step.

    .venv/bin/python bench/bench_forecast_ar.py [--threads 2] [--repeats 5]

2-layer LSTM, hidden 64, 48-step history, univariate, K in {24, 96}, batch in {1, 256}. Contenders:
  seqshape         ForecasterNet.forecast: one pass over the history, then K-1 fused cell steps
  nn_lstm_step     the same carried state, but each step a one-step nn.LSTM call
  window_rerun     the naive loop: append the prediction and re-run the whole 48-step window per step
Prints a table and one JSON line. Target (issue 3): window_rerun / seqshape >= 5 at K = 96.
"""

from __future__ import annotations

import argparse
import json
import os
import time


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    import torch

    torch.set_flush_denormal(True)
    torch.set_num_threads(args.threads)
    from seqshape.models.forecaster import ForecasterConfig, ForecasterNet

    N = 48
    net = ForecasterNet(
        ForecasterConfig(n_targets=1, lookback=N, horizon=24, hidden_size=64, num_layers=2)
    ).eval()
    lstms = [layer["fwd"] for layer in net.encoder.layers]

    def nn_lstm_step(hist, k):
        out, state = net.encode(hist)
        preds = []
        h, c = state
        for j in range(k):
            z = net.point(net.params(out))
            preds.append(z)
            if j == k - 1:
                break
            inp = z[:, None]
            hs, cs = [], []
            for li, lstm in enumerate(lstms):
                inp, (hl, cl) = lstm(inp, (h[li : li + 1], c[li : li + 1]))
                hs.append(hl)
                cs.append(cl)
            h, c = torch.cat(hs), torch.cat(cs)
            out = inp[:, 0]
        return torch.stack(preds, 1)

    def window_rerun(hist, k):
        window = hist
        preds = []
        for _ in range(k):
            out, _ = net.encode(window)
            z = net.point(net.params(out))
            preds.append(z)
            window = torch.cat([window[:, 1:], z[:, None]], dim=1)
        return torch.stack(preds, 1)

    def seqshape(hist, k):
        return net.point(net.forecast(hist, k))

    def timeit(fn, hist, k):
        with torch.no_grad():
            fn(hist, k)  # warm-up
            best = float("inf")
            for _ in range(args.repeats):
                t = time.perf_counter()
                fn(hist, k)
                best = min(best, time.perf_counter() - t)
        return best

    rows = []
    print(
        f"{'K':>4} {'B':>5} {'seqshape ms':>12} {'nn.LSTM step ms':>16} {'window ms':>10} {'window/seqshape':>16}"
    )
    for k in (24, 96):
        for b in (1, 256):
            hist = torch.randn(b, N, 1)
            with torch.no_grad():
                a, s = seqshape(hist, k), nn_lstm_step(hist, k)
                assert torch.allclose(a, s, atol=1e-4), "paths disagree"
            r = {"K": k, "B": b}
            for name, fn in (
                ("seqshape", seqshape),
                ("nn_lstm_step", nn_lstm_step),
                ("window_rerun", window_rerun),
            ):
                r[name + "_ms"] = 1000 * timeit(fn, hist, k)
            r["window_over_seqshape"] = r["window_rerun_ms"] / r["seqshape_ms"]
            rows.append(r)
            print(
                f"{k:>4} {b:>5} {r['seqshape_ms']:12.2f} {r['nn_lstm_step_ms']:16.2f} {r['window_rerun_ms']:10.2f} "
                f"{r['window_over_seqshape']:16.1f}"
            )
    print(
        json.dumps(
            {
                "bench": "forecast_ar",
                "rows": rows,
                "threads": args.threads,
                "torch": torch.__version__,
                "loadavg": os.getloadavg(),
            }
        )
    )


if __name__ == "__main__":
    main()
