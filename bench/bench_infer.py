"""Inference: eager torch against ONNX Runtime for the classifier, batch 1 and batch 256.

    .venv/bin/python bench/bench_infer.py [--threads 1] [--data jv|long] [--calls 200]

Model: SequenceClassifier's defaults (bidirectional LSTM, H=128, 1 layer, F=12, N=9, and the kernel
part fitted on the data with arbitrary labels; ``--no-kernels``: the LSTM alone) with random
weights, saved as a model directory and exported with `export_onnx` (speed does not depend on what
the weights mean). Data: the bundled JapaneseVowels test split (370 real sequences, T 7-29), or
with ``--data long`` 512 random sequences with lengths uniform in [20, 400].

Figures, per backend (median of repeated calls, one process, same thread count for both):
  batch 1     one sequence per call, model only (torch: ClassifierNet under inference_mode;
              onnx: InferenceSession.run) -> microseconds per call
  batch 256   256 sequences padded to their longest, model only -> ms per call, sequences / s
  predict     the whole data set through the public API (SequenceClassifier.predict_proba vs
              OnnxClassifier.predict_proba: scaling, bucketing, padding included) -> ms
and the largest |onnx - torch| difference of the logits (the export guarantees <= 1e-4).

Forecast section (``--section forecast``; both run by default): `Forecaster`'s defaults (LSTM,
H=64, 2 layers, lookback 48, window_norm "last", mse head, O=1) with random weights, exported as
its ``encode`` + ``step`` graphs; data: 48-row windows of ETTh1's standardised OT column (from
../shared/data, else the bundled AirPassengers). One call forecasts K=24 steps (encode + 23
steps): torch ``ForecasterNet.forecast`` under inference_mode against
``OnnxForecaster.forecast_scaled`` (its loop over the two sessions, padding included), batch 1
(microseconds per call) and batch 256 (ms per call, windows / s), median per call.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def timed(fn, inputs: list) -> float:
    """Median seconds of one call of ``fn`` per input, after two warm-up calls."""
    fn(inputs[0])
    fn(inputs[0])
    out = []
    for a in inputs:
        t0 = time.perf_counter()
        fn(a)
        out.append(time.perf_counter() - t0)
    return statistics.median(out)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--data", choices=("jv", "long"), default="jv")
    ap.add_argument("--calls", type=int, default=200, help="batch-1 calls (and 1/10 for batch 256)")
    ap.add_argument("--section", choices=("all", "classify", "forecast"), default="all")
    ap.add_argument("--horizon", type=int, default=24, help="forecast steps K per call")
    ap.add_argument(
        "--no-kernels",
        dest="kernels",
        action="store_false",
        help="the classifier without its kernel part (the LSTM alone, as before issue 16)",
    )
    args = ap.parse_args()

    import torch

    torch.set_flush_denormal(True)  # before the OpenMP workers start
    torch.set_num_threads(args.threads)

    result: dict = {"bench": "infer", "args": vars(args)}
    if args.section in ("all", "classify"):
        result.update(bench_classify(args))
    if args.section in ("all", "forecast"):
        result["forecast"] = bench_forecast(args)
    result["machine"] = {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "onnxruntime": __import__("onnxruntime").__version__,
        "threads": args.threads,
        "cpus": os.cpu_count(),
        "loadavg": os.getloadavg(),
        "platform": platform.platform(),
    }
    print(json.dumps(result))


def bench_classify(args) -> dict:
    import torch

    from seqshape import datasets
    from seqshape.api.classifier import SequenceClassifier
    from seqshape.artifacts import save_model_dir
    from seqshape.batching import collate
    from seqshape.data.scaling import StandardScaler
    from seqshape.infer.export import export_onnx
    from seqshape.infer.onnx_runtime import OnnxClassifier
    from seqshape.models.classifier import ClassifierConfig, ClassifierNet

    if args.data == "jv":
        X = datasets.load_japanese_vowels("test").X
    else:
        rng = np.random.default_rng(0)
        X = [rng.standard_normal((n, 12)).astype(np.float32) for n in rng.integers(20, 401, 512)]
    torch.manual_seed(0)
    defaults = SequenceClassifier()
    scaler = StandardScaler().fit(X)
    options = dict(defaults.model_options)
    if options["stride"] == "auto":  # as fit resolves it, from the median length
        from seqshape.api.classifier import auto_stride

        options["stride"] = auto_stride([len(a) for a in X])
    part = None
    if args.kernels and options["kernels"]:
        # the kernel part as fit sets it, on these sequences with arbitrary labels (its speed does
        # not depend on what its ridge learned)
        from seqshape.models.kernels import fit_kernel_part

        labels = np.arange(len(X)) % 9
        part, _ = fit_kernel_part(scaler.transform(X), labels, 9, options["kernels"], 0)
        options.update(kernel_dilations=part.dilations, kernel_quantiles=part.quantiles)
    else:
        options["kernels"] = 0
    cfg = ClassifierConfig(input_size=12, num_outputs=9, **options)
    net = ClassifierNet(cfg).eval()
    if part is not None:
        net.kernel_part.load_state_dict(part.state_dict())
    classes = [str(i) for i in range(1, 10)]

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = save_model_dir(
            Path(tmp) / "model",
            kind="classifier",
            config=cfg.to_dict(),
            state_dict=net.state_dict(),
            preprocessing={"classes": classes, "scaler": scaler.to_dict()},
        )
        path = export_onnx(model_dir)
        onnx_clf = OnnxClassifier(path, threads=args.threads)
        torch_clf = SequenceClassifier.load(model_dir, threads=args.threads)
        session = onnx_clf.session
        Xs = scaler.transform(X)

        def torch_call(b):
            with torch.inference_mode():
                return net(b.x, b.lengths)

        def onnx_call(b):
            return session.run(["logits"], {"x": b.x.numpy(), "lengths": b.lengths.numpy()})[0]

        rows: dict[str, dict[str, float]] = {"batch1_us": {}, "batch256_ms": {}}
        # batch 1: one sequence per call, cycling through the data
        singles = [collate([Xs[i % len(Xs)]]) for i in range(args.calls)]
        # batch 256: the first 256 sequences, padded to their longest, called repeatedly
        big = collate([Xs[i % len(Xs)] for i in range(256)])
        bigs = [big] * max(5, args.calls // 10)
        for name, call in (("torch", torch_call), ("onnx", onnx_call)):
            rows["batch1_us"][name] = 1e6 * timed(call, singles)
            rows["batch256_ms"][name] = 1e3 * timed(call, bigs)
        # the public API over the whole data set
        rows["predict_ms"] = {
            "torch": 1e3 * timed(torch_clf.predict_proba, [X] * 5),
            "onnx": 1e3 * timed(onnx_clf.predict_proba, [X] * 5),
        }
        diff = float(np.abs(torch_call(big).numpy() - onnx_call(big)).max())
        proba_diff = float(np.abs(torch_clf.predict_proba(X) - onnx_clf.predict_proba(X)).max())

    ratios = {k: v["torch"] / v["onnx"] for k, v in rows.items()}
    print(f"classify ({args.data}, n={len(X)}, threads {args.threads})")
    print(f"{'figure':<14} {'torch':>10} {'onnx':>10} {'torch/onnx':>11}")
    for k, v in rows.items():
        print(f"{k:<14} {v['torch']:10.1f} {v['onnx']:10.1f} {ratios[k]:11.2f}")
    print(
        f"batch 256 throughput: torch {256 / rows['batch256_ms']['torch'] * 1e3:.0f} seq/s, "
        f"onnx {256 / rows['batch256_ms']['onnx'] * 1e3:.0f} seq/s"
    )
    print(f"max |onnx - torch|: logits {diff:.2g}, probabilities {proba_diff:.2g}")
    return {
        "model": cfg.to_dict(),
        "figures": rows,
        "torch_over_onnx": ratios,
        "max_abs_diff": {"logits": diff, "proba": proba_diff},
    }


def _forecast_series() -> tuple[str, np.ndarray]:
    """ETTh1's OT column (../shared/data), else the bundled AirPassengers, standardised."""
    import pandas as pd

    from seqshape import datasets

    ett = Path(__file__).resolve().parents[2] / "shared" / "data" / "forecasting" / "ETTh1.csv"
    if ett.is_file():
        name, y = "ETTh1 OT", pd.read_csv(ett)["OT"].to_numpy()
    else:
        name, y = "AirPassengers", pd.read_csv(datasets.path("AirPassengers.csv")).iloc[:, 1]
        y = y.to_numpy()
    y = y.astype(np.float64)
    return name, ((y - y.mean()) / y.std()).astype(np.float32)


def bench_forecast(args) -> dict:
    import torch

    from seqshape.api.forecaster import Forecaster
    from seqshape.artifacts import save_model_dir
    from seqshape.infer.export import export_onnx
    from seqshape.infer.onnx_runtime import OnnxForecaster
    from seqshape.models.forecaster import ForecasterConfig, ForecasterNet

    torch.manual_seed(0)
    opts = Forecaster().options
    cfg = ForecasterConfig(n_targets=1, **opts)
    net = ForecasterNet(cfg).eval()
    N, K = cfg.lookback, args.horizon
    name, y = _forecast_series()
    # (W, N, 1): windows of N rows, starts spread over the series
    starts = np.linspace(0, len(y) - N, num=min(512, len(y) - N + 1)).astype(int)
    windows = np.stack([y[s : s + N, None] for s in starts])
    scaling = {"z_mean": [[0.0]], "z_std": [[1.0]], "f_mean": [[]], "f_std": [[]], "global_": True}
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = save_model_dir(
            Path(tmp) / "model",
            kind="forecaster",
            config=cfg.to_dict(),
            state_dict=net.state_dict(),
            preprocessing={"scaling": scaling, "series_names": [name]},
        )
        onnx_fc = OnnxForecaster(export_onnx(model_dir), threads=args.threads)

    def torch_call(h):
        with torch.inference_mode():
            return net.forecast(torch.from_numpy(h), K).numpy()

    def onnx_call(h):
        return onnx_fc.forecast_scaled(h, K)

    singles = [windows[i % len(windows)][None] for i in range(args.calls)]
    big = windows[np.arange(256) % len(windows)]
    bigs = [big] * max(5, args.calls // 10)
    rows: dict[str, dict[str, float]] = {"batch1_us": {}, "batch256_ms": {}}
    for backend, call in (("torch", torch_call), ("onnx", onnx_call)):
        rows["batch1_us"][backend] = 1e6 * timed(call, singles)
        rows["batch256_ms"][backend] = 1e3 * timed(call, bigs)
    diff = float(np.abs(torch_call(big) - onnx_call(big)).max())
    ratios = {k: v["torch"] / v["onnx"] for k, v in rows.items()}
    print(f"forecast ({name}, N={N}, K={K}: encode + {K - 1} steps, threads {args.threads})")
    print(f"{'figure':<14} {'torch':>10} {'onnx':>10} {'torch/onnx':>11}")
    for k, v in rows.items():
        print(f"{k:<14} {v['torch']:10.1f} {v['onnx']:10.1f} {ratios[k]:11.2f}")
    print(
        f"batch 256 throughput: torch {256 / rows['batch256_ms']['torch'] * 1e3:.0f} windows/s, "
        f"onnx {256 / rows['batch256_ms']['onnx'] * 1e3:.0f} windows/s"
    )
    print(f"max |onnx - torch|: parameters {diff:.2g}")
    return {
        "data": name,
        "k": K,
        "model": cfg.to_dict(),
        "figures": rows,
        "torch_over_onnx": ratios,
        "max_abs_diff": {"params": diff},
    }


if __name__ == "__main__":
    main()
