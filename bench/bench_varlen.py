"""The variable-length path against packing and against padding, with and without denormal flushing.

    .venv/bin/python bench/bench_varlen.py [--n 4096] [--threads 1] [--gru] [--bidirectional]

Data: N sequences, lengths uniform in [20, 400], F=12 random features, 9 random classes (the cost of
an epoch does not depend on what the numbers mean). Model: LSTM(12 -> 128) (GRU with --gru; two
directions with --bidirectional) + Linear, batch 64, AdamW, gradient clipping. One training epoch per
contender, after one warm-up step, batches collated before the clock starts:

  seqshape   ClassifierNet (SequenceEncoder's own path choice: padded oneDNN kernel per direction,
             backward direction reversed within each length, true last steps gathered) over
             length-bucketed batches (BucketBatchSampler)
  batchmax   the same net over random batches, each padded to its own longest sequence
  globalmax  the same net over random batches, all padded to the longest sequence of the data
  packed     the textbook loop: nn.LSTM over pack_padded_sequence of random batches, h_n of the
             last layer (both directions with --bidirectional)

Denormal flushing must be set before PyTorch's OpenMP workers start, so each setting (flush on,
flush off) runs in its own fresh subprocess. Prints a table and one JSON line. Targets (issue 7):
packed / seqshape >= 15 and processed / real steps <= 1.05 with bucketing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import numpy as np

CONTENDERS = ("seqshape", "batchmax", "globalmax", "packed")


def worker(args) -> dict:
    import torch

    # before any tensor operation, so that every OpenMP worker inherits the mode
    supported = torch.set_flush_denormal(args.flush)
    torch.set_num_threads(args.threads)
    from torch import nn

    from seqshape.batching import BucketBatchSampler, RandomBatchSampler, collate
    from seqshape.models.classifier import ClassifierConfig, ClassifierNet

    rng = np.random.default_rng(0)
    F, N = 12, 9
    lengths = rng.integers(args.min_len, args.max_len + 1, size=args.n)
    X = [rng.standard_normal((n, F)).astype(np.float32) for n in lengths]
    y = rng.integers(0, N, size=args.n)
    cell = "gru" if args.gru else "lstm"
    global_max = int(lengths.max())

    def batches_of(sampler, pad_to: int | None):
        out = []
        for idx in sampler:
            b = collate([X[i] for i in idx], y[idx])
            if pad_to is not None and b.x.shape[1] < pad_to:
                # (B, T, F) -> (B, pad_to, F): zeros appended after every sequence
                b.x = torch.nn.functional.pad(b.x, (0, 0, 0, pad_to - b.x.shape[1]))
            out.append(b)
        return out

    bucket = BucketBatchSampler(lengths, args.batch, seed=1)
    random = RandomBatchSampler(lengths, args.batch, seed=1)
    data = {
        "seqshape": batches_of(bucket, None),
        "batchmax": batches_of(random, None),
        "globalmax": batches_of(random, global_max),
        "packed": batches_of(random, None),
    }
    real = int(lengths.sum())
    steps_ratio = {
        k: sum(b.x.shape[0] * b.x.shape[1] for b in v) / real
        for k, v in data.items()
        if k != "packed"
    }
    steps_ratio["packed"] = 1.0

    class Packed(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            rnn = nn.GRU if args.gru else nn.LSTM
            self.rnn = rnn(F, args.hidden, batch_first=True, bidirectional=args.bidirectional)
            self.head = nn.Linear(args.hidden * (2 if args.bidirectional else 1), N)

        def forward(self, x, lengths):
            p = nn.utils.rnn.pack_padded_sequence(
                x, lengths, batch_first=True, enforce_sorted=False
            )
            _, h = self.rnn(p)
            h = h if args.gru else h[0]
            # (L·D, B, H) -> (B, D·H): the last layer's final state of each direction
            last = torch.cat(list(h[-(2 if args.bidirectional else 1) :]), dim=-1)
            return self.head(last)

    def make(name: str) -> nn.Module:
        torch.manual_seed(0)
        if name == "packed":
            return Packed()
        cfg = ClassifierConfig(
            input_size=F,
            num_outputs=N,
            hidden_size=args.hidden,
            bidirectional=args.bidirectional,
            cell=cell,
            dropout=0.0,
        )
        return ClassifierNet(cfg)

    def epoch(name: str) -> float:
        net = make(name)
        params = list(net.parameters())
        opt = torch.optim.AdamW(params, lr=1e-3)
        loss_f = nn.CrossEntropyLoss()

        def step(b):
            loss = loss_f(net(b.x, b.lengths), b.y)
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()

        step(data[name][0])  # warm-up
        t0 = time.perf_counter()
        for b in data[name]:
            step(b)
        return time.perf_counter() - t0

    probe = make("seqshape")
    b0 = data["seqshape"][0]
    path = probe.encoder.choose_path(b0.x, b0.lengths, need_state=False)
    names = [c for c in CONTENDERS if not (args.skip_packed and c == "packed")]
    load_before = os.getloadavg()
    runs: dict[str, list[float]] = {c: [] for c in names}
    for _ in range(args.repeats):  # interleaved, median reported
        for c in names:
            runs[c].append(epoch(c))
    return {
        "flush_denormal": args.flush,
        "flush_supported": bool(supported),
        "seqshape_path": path,
        "seconds": {c: statistics.median(v) for c, v in runs.items()},
        "all_seconds": runs,
        "steps_ratio": steps_ratio,
        "real_steps": real,
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--n", type=int, default=4096, help="sequences (one epoch)")
    ap.add_argument("--min-len", type=int, default=20)
    ap.add_argument("--max-len", type=int, default=400)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=1, help="epochs per contender (median)")
    ap.add_argument("--gru", action="store_true", help="GRU instead of LSTM")
    ap.add_argument("--bidirectional", action="store_true", help="two directions (D=2)")
    ap.add_argument("--skip-packed", action="store_true")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--flush", type=int, default=1, help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.flush = bool(args.flush)
    if args.worker:
        print(json.dumps(worker(args)))
        return

    settings = {}
    for flush in (True, False):
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", "--flush", str(int(flush))]
        for k in ("n", "min_len", "max_len", "hidden", "batch", "threads", "repeats"):
            cmd += [f"--{k.replace('_', '-')}", str(getattr(args, k))]
        cmd += [f"--{k}" for k in ("gru", "bidirectional") if getattr(args, k)]
        cmd += ["--skip-packed"] if args.skip_packed else []
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
        t0 = time.perf_counter()
        p = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if p.returncode != 0:
            sys.exit(f"worker (flush={flush}) failed:\n{p.stderr}")
        settings["flush" if flush else "no_flush"] = json.loads(p.stdout.strip().splitlines()[-1])
        print(f"  flush={flush}: {time.perf_counter() - t0:.0f} s", file=sys.stderr)

    import torch

    on, off = settings["flush"], settings["no_flush"]
    names = list(on["seconds"])
    print(f"cell {'gru' if args.gru else 'lstm'}, bidirectional {args.bidirectional}, n {args.n}")
    print(f"{'contender':<10} {'flush s':>9} {'no-flush s':>11} {'off/on':>7} {'steps/real':>11}")
    for c in names:
        a, b = on["seconds"][c], off["seconds"][c]
        print(f"{c:<10} {a:9.2f} {b:11.2f} {b / a:7.2f} {on['steps_ratio'][c]:11.3f}")
    ratios = {}
    for key, s in settings.items():
        sec = s["seconds"]
        for c in names:
            if c != "seqshape":
                ratios[f"{c}_over_seqshape_{key}"] = sec[c] / sec["seqshape"]
    for k, v in ratios.items():
        print(f"{k:<34} {v:7.2f}")
    targets = {
        "packed_over_seqshape >= 15 (flush)": (
            ratios.get("packed_over_seqshape_flush", float("nan")) >= 15
        ),
        "bucketed steps/real <= 1.05": on["steps_ratio"]["seqshape"] <= 1.05,
    }
    for k, v in targets.items():
        print(f"target {k}: {'met' if v else 'NOT met'}")
    machine = {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "threads": args.threads,
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
    }
    print(
        json.dumps(
            {
                "bench": "varlen",
                "args": {k: v for k, v in vars(args).items() if k not in ("worker", "flush")},
                "settings": settings,
                "ratios": ratios,
                "targets_met": targets,
                "machine": machine,
            }
        )
    )


if __name__ == "__main__":
    main()
