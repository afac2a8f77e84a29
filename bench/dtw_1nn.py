"""1-NN DTW on the classification suite, computed here: the reference issue 16 names, for the
cropped variable-length variants too (the UCR archive publishes figures only for the fixed sets).

    .venv/bin/python bench/dtw_1nn.py [--sets all|fixed|crop|A,B] [--threads 1]
        [--json bench/results/dtw_1nn.json]

Univariate series z-normalised (the UCR convention), multivariate ones as they are, the cost of a step pair the squared
Euclidean distance over the channels (dependent DTW), no warping window (the archive's published
figures learn one on the training set, so they can differ a little), the label of the training
series nearest by DTW distance, ties to the first. Series of different lengths are compared
whole, end to end.

The recurrence D[i, j] = c[i, j] + min(D[i-1, j], D[i-1, j-1], D[i, j-1]) is computed a row at a
time for every (test, training) pair at once: with a[j] = min(D[i-1, j], D[i-1, j-1]) and C the
running sum of row i's costs, D[i, j] = C[j] + min over k <= j of (a[k] - C[k-1]), a cumulative
minimum, so each row is a few tensor operations (float32). Written for this bench; it checks itself against
the plain double loop on a few pairs before it runs.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from classify_suite import ANCHORS, load, parse_sets


def znorm(a: np.ndarray) -> np.ndarray:
    """A univariate series z-normalised (the UCR convention, as the classifier's
    series_norm="auto"); a multivariate one as it is (UEA's DTW figures use the raw channels,
    whose levels carry information: JapaneseVowels' speakers)."""
    a = np.asarray(a, dtype=np.float64)
    if a.shape[1] > 1:
        return a
    sd = a.std(0, keepdims=True)
    return (a - a.mean(0, keepdims=True)) / np.where(sd > 1e-8, sd, 1.0)


def pad(X: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """(n,) list of (T_i, F) -> (n, T_max, F) zero-padded float32 and (n,) lengths."""
    n, F, T = len(X), X[0].shape[1], max(len(a) for a in X)
    out = torch.zeros(n, T, F, dtype=torch.float32)
    for i, a in enumerate(X):
        out[i, : len(a)] = torch.from_numpy(a)
    return out, torch.tensor([len(a) for a in X])


def dtw_many(x: torch.Tensor, lx: torch.Tensor, y: torch.Tensor, ly: torch.Tensor) -> torch.Tensor:
    """DTW distances of P pairs: x (P, Tx, F), y (P, Ty, F) zero-padded, lengths lx, ly (P,) ->
    (P,) each pair's D[lx - 1, ly - 1]. Cells past a length hold garbage that is never read."""
    P, Tx, _ = x.shape
    Ty = y.shape[1]
    inf = torch.tensor(float("inf"), dtype=torch.float32)
    prev = torch.full((P, Ty), float("inf"), dtype=torch.float32)
    out = torch.empty(P, dtype=torch.float32)
    for i in range(Tx):
        # (P, Ty): the cost of x_i against every y_j
        cost = ((x[:, i : i + 1, :] - y) ** 2).sum(-1)
        if i == 0:  # the corner: a path starts at (0, 0)
            a = torch.full((P, Ty), float("inf"), dtype=torch.float32)
            a[:, 0] = 0.0
        else:  # from above or from the diagonal
            diag = torch.cat([inf.expand(P, 1), prev[:, :-1]], dim=1)
            a = torch.minimum(prev, diag)
        C = torch.cumsum(cost, dim=1)
        C_before = torch.cat([torch.zeros(P, 1, dtype=torch.float32), C[:, :-1]], dim=1)
        cur = C + torch.cummin(a - C_before, dim=1).values
        done = lx == i + 1
        if done.any():
            out[done] = cur[done, ly[done] - 1]
        prev = cur
    return out


def dtw_loop(a: np.ndarray, b: np.ndarray) -> float:
    """The textbook double loop, for the self-check."""
    D = np.full((len(a) + 1, len(b) + 1), np.inf)
    D[0, 0] = 0.0
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            c = float(((a[i - 1] - b[j - 1]) ** 2).sum())
            D[i, j] = c + min(D[i - 1, j], D[i - 1, j - 1], D[i, j - 1])
    return float(D[-1, -1])


def self_check() -> None:
    rng = np.random.default_rng(0)
    X = [rng.normal(size=(int(n), 2)) for n in rng.integers(3, 30, 6)]
    Y = [rng.normal(size=(int(n), 2)) for n in rng.integers(3, 30, 6)]
    x, lx = pad(X)
    y, ly = pad(Y)
    got = dtw_many(x, lx, y, ly).numpy()
    want = np.array([dtw_loop(a, b) for a, b in zip(X, Y)])
    if not np.allclose(got, want, rtol=1e-5, atol=1e-4):  # float32 sums
        raise SystemExit(f"dtw self-check failed: {got} != {want}")


def one_nn_dtw(Xtr, ytr, Xte, yte, max_pairs: int = 20_000) -> float:
    Xtr, Xte = [znorm(a) for a in Xtr], [znorm(a) for a in Xte]
    ytr, yte = np.asarray(ytr), np.asarray(yte)
    y_all, ly_all = pad(Xtr)
    n_tr = len(Xtr)
    per = max(1, max_pairs // n_tr)  # test series per pass
    correct = 0
    for s in range(0, len(Xte), per):
        chunk = Xte[s : s + per]
        x, lx = pad(chunk)
        # every (test, train) pair of the chunk: (c·n_tr, ...)
        xs, lxs = x.repeat_interleave(n_tr, 0), lx.repeat_interleave(n_tr)
        ys, lys = y_all.repeat(len(chunk), 1, 1), ly_all.repeat(len(chunk))
        d = dtw_many(xs, lxs, ys, lys).view(len(chunk), n_tr)
        pred = ytr[d.argmin(1).numpy()]
        correct += int((pred == yte[s : s + per]).sum())
    return correct / len(Xte)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sets", default="all")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    self_check()
    rows = []
    for name in parse_sets(args.sets):
        t = time.perf_counter()
        Xtr, ytr, Xte, yte = load(name)
        acc = one_nn_dtw(Xtr, ytr, Xte, yte)
        published = ANCHORS[name.partition("~")[0]][0]
        rows.append({"set": name, "dtw_1nn": acc, "published_learned_window": published,
                     "seconds": round(time.perf_counter() - t, 1)})  # fmt: skip
        print(json.dumps(rows[-1]), flush=True)
    print("\n| set | 1-NN DTW here (no window) | published (learned window, fixed sets) | s |")
    print("|---|---|---|---|")
    for r in rows:
        pub = "—" if r["published_learned_window"] is None or "~" in r["set"] else (
            f"{r['published_learned_window']:.3f}"
        )  # fmt: skip
        print(f"| {r['set']} | {r['dtw_1nn']:.3f} | {pub} | {r['seconds']:.0f} |")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "threads": args.threads}, indent=1) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
