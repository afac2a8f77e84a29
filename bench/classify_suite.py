"""The classification suite: the default SequenceClassifier (only the data given) on JapaneseVowels
and the six UCR/UEA sets in ../shared/data/classification/ucr, plus variable-length variants, next
to the published 1-NN DTW and ROCKET accuracies.

    .venv/bin/python bench/classify_suite.py [--seeds 0,1,2] [--sets all|fixed|crop|A,B,...]
        [--set key=value ...] [--threads 1] [--json bench/results/classify_suite.json]

Each set trains on its default train split (a stratified 10% of it held out for validation, as the
estimator does by itself) and is scored on the default test split. ``NAME~crop`` is the same set made
variable-length: every train and test series keeps a random window of 60-100% of its steps (its own
start), drawn with a fixed seed (CROP_SEED), so the sets are the same on every run. ``--set`` passes
an estimator option (``--set frontend=none --set epochs=300``) to try a candidate default.
Training seconds are wall-clock at ``--threads`` threads (1 by default), one process.
"""

from __future__ import annotations

import argparse
import ast
import json
import statistics
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "classification"
CROP_SEED = 20260
# published anchors from ucr/README.md: 1-NN DTW (learned window; UCR DataSummary.csv) and ROCKET
# (Dempster et al. 2020, mean over runs); None where the README gives none
ANCHORS = {
    "JapaneseVowels": (None, None),
    "ACSF1": (0.620, 0.886),
    "OSULeaf": (0.612, 0.941),
    "ArrowHead": (0.800, 0.814),
    "GunPoint": (0.913, 1.000),
    "ItalyPowerDemand": (0.955, 0.970),
    "BasicMotions": (None, None),
}
FIXED = list(ANCHORS)
CROPPED = [f"{n}~crop" for n in FIXED if n != "JapaneseVowels"]  # JapaneseVowels already varies


def paths(name: str) -> tuple[Path, Path]:
    if name == "JapaneseVowels":
        d = DATA / "japanese_vowels"
        return d / "JapaneseVowels_TRAIN.ts", d / "JapaneseVowels_TEST.ts"
    d = DATA / "ucr" / name
    return d / f"{name}_TRAIN.ts", d / f"{name}_TEST.ts"


def crop(X: list[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
    """Each (T, F) series -> a random window of 60-100% of its steps, at a random start."""
    out = []
    for a in X:
        keep = max(2, int(round(len(a) * rng.uniform(0.6, 1.0))))
        start = int(rng.integers(0, len(a) - keep + 1))
        out.append(a[start : start + keep])
    return out


def load(name: str):
    from seqshape.data.sequences import read_sequences

    base, _, variant = name.partition("~")
    tr_path, te_path = paths(base)
    if not tr_path.exists():  # JapaneseVowels may ship gzipped
        tr_path, te_path = Path(f"{tr_path}.gz"), Path(f"{te_path}.gz")
    train, test = read_sequences(tr_path), read_sequences(te_path)
    Xtr, Xte = list(train.X), list(test.X)
    if variant == "crop":
        rng = np.random.default_rng(CROP_SEED)
        Xtr, Xte = crop(Xtr, rng), crop(Xte, rng)
    return Xtr, list(train.y), Xte, list(test.y)


def parse_sets(text: str) -> list[str]:
    if text == "all":
        return FIXED + CROPPED
    if text == "fixed":
        return FIXED
    if text == "crop":
        return CROPPED
    names = [s.strip() for s in text.split(",") if s.strip()]
    for n in names:
        if n.partition("~")[0] not in ANCHORS or n.partition("~")[2] not in ("", "crop"):
            raise SystemExit(f"--sets: unknown set {n!r}; expected names from {FIXED} (~crop)")
    return names


def parse_options(pairs: list[str]) -> dict:
    opts = {}
    for p in pairs:
        key, sep, value = p.partition("=")
        if not sep:
            raise SystemExit(f"--set: expected key=value, got {p!r}")
        try:
            opts[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            opts[key] = value  # a bare word: a string option such as frontend=conv
    return opts


def fmt(v: float | None) -> str:
    return "—" if v is None else f"{v:.3f}"


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--sets", default="all", help="all | fixed | crop | comma-separated names")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", default=None, help="write the rows here (bench/results/...)")
    args = ap.parse_args()

    from seqshape import runtime
    from seqshape.api.classifier import SequenceClassifier

    runtime.configure(args.threads)
    seeds = [int(s) for s in args.seeds.split(",")]
    options = parse_options(args.set)
    rows = []
    for name in parse_sets(args.sets):
        Xtr, ytr, Xte, yte = load(name)
        accs, secs, restarts, runs = [], [], 0, []
        parts = {"lstm": [], "kernels": []}
        for seed in seeds:
            t = time.perf_counter()
            clf = SequenceClassifier(seed=seed, threads=args.threads, progress=False, **options)
            clf.fit(Xtr, ytr)
            seconds = time.perf_counter() - t
            report = clf.evaluate(Xte, yte)
            acc = float(report["accuracy"])
            accs.append(acc)
            for k in parts:  # each part alone (the LSTM alone when there is no kernel part)
                parts[k].append(report.get("parts", {}).get(k, acc if k == "lstm" else None))
            secs.append(seconds)
            restarts += len(clf.metrics.get("restarts", []))
            runs.append(
                {
                    "seed": seed,
                    "accuracy": acc,
                    "train_seconds": round(seconds, 2),
                    "epochs_run": clf.metrics["epochs_run"],
                    "best_epoch": clf.metrics["best_epoch"],
                    "stride": clf.config.stride,
                    "restarts": clf.metrics.get("restarts", []),
                    "parts": report.get("parts"),
                    "kernel_part": clf.metrics.get("kernel_part"),
                }
            )
            print(
                f"{name} seed {seed}: accuracy {acc:.4f} ({seconds:.1f} s, "
                f"epochs {clf.metrics['epochs_run']}, best {clf.metrics['best_epoch']}; "
                f"parts {report.get('parts')})",
                flush=True,
            )
        dtw, rocket = ANCHORS[name.partition("~")[0]]
        lengths = [len(a) for a in Xtr + Xte]
        rows.append(
            {
                "set": name,
                "n_train": len(Xtr),
                "n_test": len(Xte),
                "classes": len(set(ytr)),
                "features": int(Xtr[0].shape[1]),
                "length_min": min(lengths),
                "length_max": max(lengths),
                "accuracy_mean": statistics.mean(accs),
                "accuracy_sd": statistics.stdev(accs) if len(accs) > 1 else 0.0,
                "train_seconds_mean": statistics.mean(secs),
                "restarts": restarts,
                "lstm_part_mean": statistics.mean(parts["lstm"]),
                "kernel_part_mean": (
                    statistics.mean(parts["kernels"]) if None not in parts["kernels"] else None
                ),
                "dtw_1nn": dtw,
                "rocket": rocket,
                "runs": runs,
            }
        )
    print()
    print(f"options: {options or 'defaults'}; seeds {seeds}; {args.threads} thread(s)")
    print()
    print(
        "| set | train/test | classes | length | accuracy (mean ± sd) | LSTM part | kernel part "
        "| train s | 1-NN DTW | ROCKET |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        length = (
            str(r["length_min"])
            if r["length_min"] == r["length_max"]
            else f"{r['length_min']}–{r['length_max']}"
        )
        if r["features"] > 1:
            length += f" ×{r['features']}"
        print(
            f"| {r['set']} | {r['n_train']}/{r['n_test']} | {r['classes']} | {length} | "
            f"{r['accuracy_mean']:.3f} ± {r['accuracy_sd']:.3f} | {fmt(r['lstm_part_mean'])} | "
            f"{fmt(r['kernel_part_mean'])} | {r['train_seconds_mean']:.0f} | "
            f"{fmt(r['dtw_1nn'])} | {fmt(r['rocket'])} |"
        )
    mean = statistics.mean(r["accuracy_mean"] for r in rows)
    print(f"\nmean accuracy over {len(rows)} sets: {mean:.4f}")
    if args.json:
        out = {
            "options": options,
            "seeds": seeds,
            "threads": args.threads,
            "crop_seed": CROP_SEED,
            "mean_accuracy": mean,
            "rows": rows,
        }
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
