"""One training epoch of SequenceClassifier against hand-written PyTorch loops on the same data.

    .venv/bin/python bench/bench_classify_epoch.py [--n 4096] [--threads 2] [--skip-packed]

Data: N sequences, lengths uniform in [20, 400], F=12 features, LSTM hidden 128, batch 64, 9 classes
(random values: the cost of an epoch does not depend on what the numbers mean).

Contenders, each one epoch after one warm-up batch, in one process:
  seqshape        SequenceClassifier's own training loop (bucketed batches, padded kernel, gather)
  floor_bucketed  a hand-written loop over the *same* bucketed batches: nn.LSTM on the padded batch,
                  each true last step gathered, Linear, AdamW, clipping (the framework-overhead floor)
  floor_batchmax  a hand-written loop over random batches padded to each batch's maximum + gather
  packed          the textbook loop: random batches through pack_padded_sequence, h_n of the last layer
Prints a table and one JSON line; the targets (issue 2/7): seqshape / floor_bucketed <= 1.10
(<= 1.05 for issue 7); packed / seqshape >= 15.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--n", type=int, default=4096)
    ap.add_argument("--min-len", type=int, default=20)
    ap.add_argument("--max-len", type=int, default=400)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip-packed", action="store_true")
    ap.add_argument("--repeats", type=int, default=3, help="epochs per contender (median reported)")
    ap.add_argument("--no-flush", action="store_true", help="leave denormal flushing off")
    args = ap.parse_args()

    import torch

    if not args.no_flush:
        torch.set_flush_denormal(True)  # before the OpenMP workers start
    torch.set_num_threads(args.threads)
    from torch import nn

    from seqshape.api.classifier import SequenceClassifier
    from seqshape.batching import BucketBatchSampler, RandomBatchSampler, collate
    from seqshape.models.encoder import gather_last

    rng = np.random.default_rng(0)
    F, N = 12, 9
    lengths = rng.integers(args.min_len, args.max_len + 1, size=args.n)
    X = [rng.standard_normal((n, F)).astype(np.float32) for n in lengths]
    y = rng.integers(0, N, size=args.n)

    # seqshape: one epoch of its own loop (no validation, no scaling: the same work as the floor)
    clf = SequenceClassifier(
        hidden_size=args.hidden,
        bidirectional=False,
        dropout=0.0,
        epochs=1,
        batch_size=args.batch,
        val_fraction=0.0,
        scale=False,
        threads=args.threads,
        patience=0,
    )
    clf.fit(X[: args.batch], [str(v) for v in y[: args.batch] % 2])  # warm-up

    def seqshape_epoch() -> float:
        t = time.perf_counter()
        clf.fit(X, [str(v) for v in y])
        return time.perf_counter() - t

    def hand_loop(sampler, packed: bool) -> float:
        torch.manual_seed(0)
        lstm = nn.LSTM(F, args.hidden, batch_first=True)
        head = nn.Linear(args.hidden, N)
        params = list(lstm.parameters()) + list(head.parameters())
        opt = torch.optim.AdamW(params, lr=1e-3)
        loss_f = nn.CrossEntropyLoss()
        batches = [collate([X[i] for i in idx], y[idx]) for idx in sampler]

        def step(b):
            if packed:
                p = nn.utils.rnn.pack_padded_sequence(
                    b.x, b.lengths, batch_first=True, enforce_sorted=False
                )
                _, (h, _) = lstm(p)
                last = h[-1]
            else:
                out, _ = lstm(b.x)
                last = gather_last(out, b.lengths)
            loss = loss_f(head(last), b.y)
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()

        step(batches[0])  # warm-up
        t0 = time.perf_counter()
        for b in batches:
            step(b)
        return time.perf_counter() - t0

    # seqshape and the floor alternate, `--repeats` times each; the median of each is reported
    runs: dict[str, list[float]] = {"seqshape": [], "floor_bucketed": [], "floor_batchmax": []}
    for _ in range(args.repeats):
        runs["seqshape"].append(seqshape_epoch())
        runs["floor_bucketed"].append(
            hand_loop(BucketBatchSampler(lengths, args.batch, seed=1), False)
        )
        runs["floor_batchmax"].append(
            hand_loop(RandomBatchSampler(lengths, args.batch, seed=1), False)
        )
    results = {k: statistics.median(v) for k, v in runs.items()}
    if not args.skip_packed:
        results["packed"] = hand_loop(RandomBatchSampler(lengths, args.batch, seed=1), True)

    waste_bucket = BucketBatchSampler(lengths, args.batch, seed=1).padding_waste()
    waste_random = RandomBatchSampler(lengths, args.batch, seed=1).padding_waste()
    ratios = {
        "seqshape_over_floor_bucketed": results["seqshape"] / results["floor_bucketed"],
        "floor_batchmax_over_seqshape": results["floor_batchmax"] / results["seqshape"],
    }
    if "packed" in results:
        ratios["packed_over_seqshape"] = results["packed"] / results["seqshape"]
    machine = {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "threads": args.threads,
        "cpus": os.cpu_count(),
        "loadavg": os.getloadavg(),
        "platform": platform.platform(),
        "flush_denormal": not args.no_flush,
    }
    print(f"{'contender':<16} {'seconds':>9}")
    for k, v in results.items():
        print(f"{k:<16} {v:9.2f}")
    print(
        f"processed/real steps: bucketed {1 + waste_bucket:.3f}, random batches {1 + waste_random:.3f}"
    )
    for k, v in ratios.items():
        print(f"{k:<32} {v:6.2f}")
    print(
        json.dumps(
            {
                "bench": "classify_epoch",
                "args": vars(args),
                "seconds": results,
                "all_seconds": runs,
                "ratios": ratios,
                "steps_ratio": {"bucketed": 1 + waste_bucket, "random": 1 + waste_random},
                "machine": machine,
            }
        )
    )


if __name__ == "__main__":
    main()
