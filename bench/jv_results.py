"""JapaneseVowels test accuracy of the default SequenceClassifier over several seeds.

    .venv/bin/python bench/jv_results.py [--seeds 0,1,2] [--threads 2]

Trains on the standard train split (270; a stratified 10% of it held out for early stopping), tests on the
standard test split (370), prints one row per seed, the mean and spread, and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    from seqshape import datasets, runtime
    from seqshape.api.classifier import SequenceClassifier

    runtime.configure(args.threads)
    train = datasets.load_japanese_vowels("train")
    test = datasets.load_japanese_vowels("test")
    rows = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        t = time.perf_counter()
        clf = SequenceClassifier(seed=seed, threads=args.threads).fit(train)
        seconds = time.perf_counter() - t
        r = clf.evaluate(test)
        rows.append(
            {
                "seed": seed,
                "accuracy": r["accuracy"],
                "macro_f1": r["macro_f1"],
                "epochs_run": clf.metrics["epochs_run"],
                "best_epoch": clf.metrics["best_epoch"],
                "train_seconds": round(seconds, 2),
            }
        )
        print(
            f"seed {seed}: accuracy {r['accuracy']:.4f} macro-F1 {r['macro_f1']:.4f} "
            f"epochs {clf.metrics['epochs_run']} (best {clf.metrics['best_epoch']}) {seconds:.1f} s",
            flush=True,
        )
    accs = [r["accuracy"] for r in rows]
    summary = {
        "mean_accuracy": statistics.mean(accs),
        "stdev_accuracy": statistics.stdev(accs) if len(accs) > 1 else 0.0,
        "min_accuracy": min(accs),
        "max_accuracy": max(accs),
        "mean_train_seconds": statistics.mean(r["train_seconds"] for r in rows),
        "threads": args.threads,
        "loadavg": os.getloadavg(),
    }
    print(
        f"mean {summary['mean_accuracy']:.4f} ± {summary['stdev_accuracy']:.4f} "
        f"(min {summary['min_accuracy']:.4f}, max {summary['max_accuracy']:.4f}), "
        f"{summary['mean_train_seconds']:.1f} s per training"
    )
    print(json.dumps({"bench": "jv_results", "rows": rows, "summary": summary}))


if __name__ == "__main__":
    main()
