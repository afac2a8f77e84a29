"""The classifier's kernel part: fixed dilated convolutions, their proportion of positive values,
and a ridge classifier fitted in closed form — the idea of ROCKET and MiniRocket (Dempster,
Petitjean & Webb, DMKD 2020; Dempster, Schmidt & Webb, KDD 2021), written here for padded batches.

x (B, T, F), lengths (B,), zero after each end
  -> for each dilation d: Conv1d(F, 84, 9, dilation d, "same" zero padding)     (B, 84, T)
     the 84 kernels: weight -1 at every tap, +2 at three of the nine (all C(9, 3) choices), over
     a random subset of the channels; each output is compared with q_d biases            (B, 84, q_d, T)
  -> the proportion of valid steps above each bias ("PPV")                        (B, 84·q_d)
  -> all dilations side by side: features                                          (B, P)
  -> ridge scores: Linear(P, N), standardisation folded in                         (B, N)
  -> logits: ridge scores x a temperature fitted on the leave-one-out scores       (B, N)

Padding never changes a feature: padded steps are zero, exactly what the convolution's own zero
padding gives a sequence that is alone, and the proportion counts valid steps only.
Nothing here trains by gradient: `fit_kernel_part` sets every buffer from the training data.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as nnf

WIDTH = 9
# the 84 kernels: -1 everywhere and +2 at the three taps of each combination (weights sum to 0)
_TAPS = list(itertools.combinations(range(WIDTH), 3))
N_KERNELS = len(_TAPS)
MAX_DILATIONS = 32
# ridge penalties tried by leave-one-out, times the number of training sequences: with features
# standardised to unit variance this is MiniRocket's grid on unit-norm features (1e-3 ... 1e3)
ALPHAS = np.logspace(-3, 3, 10)
# the ridge is fitted on at most this many sequences (a stratified sample beyond): the dual
# solve is cubic in their number
MAX_RIDGE = 4000
TEMPERATURES = np.logspace(-1, 2, 31)
# inputs are clipped to +-CLIP and rounded to multiples of 1 / GRID before the convolutions: every
# product and partial sum of a kernel (at most 9 channels x 9 taps, |weight| <= 2) is then exact
# in float32, so torch and ONNX Runtime give the same outputs in any summation order and no
# comparison with a bias flips between them (9 * 9 * 2 * 64 * 1024 < 2**24)
CLIP, GRID = 64.0, 1024.0


def on_grid(x: Tensor) -> Tensor:
    """Clip to +-CLIP and round to multiples of 1 / GRID (see GRID): exact kernel sums."""
    return torch.round(x.clamp(-CLIP, CLIP) * GRID) / GRID


def kernel_weights() -> Tensor:
    """(84, 9): -1 at every tap, +2 at the three taps of each combination."""
    w = -torch.ones(N_KERNELS, WIDTH)
    for k, taps in enumerate(_TAPS):
        w[k, list(taps)] = 2.0
    return w


def plan(length: int, features: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Dilations and biases per dilation for series of about ``length`` steps and about
    ``features`` features: dilations spread exponentially up to a receptive field of ``length``,
    each given biases in proportion to how often it came up (MiniRocket's allocation)."""
    per_kernel = max(1, features // N_KERNELS)
    n = min(MAX_DILATIONS, per_kernel)
    top = math.log2(max(1.0, (length - 1) / (WIDTH - 1)))
    raw = np.floor(2.0 ** np.linspace(0.0, top, n)).astype(int)
    # each of the n slots gets per_kernel // n biases, the remainder one each to the first slots;
    # slots that came out at the same dilation pool theirs
    share = np.full(n, per_kernel // n) + (np.arange(n) < per_kernel % n)
    dilations, where = np.unique(raw, return_inverse=True)
    quantiles = np.bincount(where, weights=share).astype(int)
    keep = quantiles > 0
    return tuple(int(d) for d in dilations[keep]), tuple(int(q) for q in quantiles[keep])


class KernelPart(nn.Module):
    """Fixed kernels -> PPV features -> ridge scores -> logits. Buffers only (set by
    `fit_kernel_part`); sizes from ``dilations``, ``quantiles``, ``channels`` and ``classes``."""

    def __init__(
        self, channels: int, classes: int, dilations: tuple[int, ...], quantiles: tuple[int, ...]
    ) -> None:
        super().__init__()
        self.dilations = tuple(dilations)
        self.quantiles = tuple(quantiles)
        n_features = N_KERNELS * sum(quantiles)
        if len(dilations) != len(quantiles):
            raise ValueError("dilations, quantiles: expected one bias count per dilation")
        for i, q in enumerate(quantiles):
            # (84, F, 9) per dilation: the kernel on a random subset of the channels
            self.register_buffer(f"w{i}", torch.zeros(N_KERNELS, channels, WIDTH))
            # (84, q_d): the thresholds each output is compared with
            self.register_buffer(f"b{i}", torch.zeros(N_KERNELS, q))
        self.register_buffer("coef", torch.zeros(classes, n_features))
        self.register_buffer("intercept", torch.zeros(classes))
        self.register_buffer("temperature", torch.ones(()))

    @property
    def n_features(self) -> int:
        return N_KERNELS * sum(self.quantiles)

    def conv(self, i: int, x: Tensor) -> Tensor:
        """(B, F, T) channels first, on the grid, zero after each end -> (B, 84, T), dilation i."""
        d = self.dilations[i]
        return nnf.conv1d(x, getattr(self, f"w{i}"), padding=d * (WIDTH // 2), dilation=d)

    def features(self, x: Tensor, lengths: Tensor) -> Tensor:
        """x (B, T, F), lengths (B,) -> (B, P) proportions of valid steps above each bias."""
        # (B, T): 1 on valid steps; the counts per sequence (B, 1)
        keep = (torch.arange(x.shape[1], device=x.device)[None, :] < lengths[:, None]).to(x.dtype)
        n = keep.sum(1, keepdim=True).clamp(min=1)
        # (B, T, F) -> (B, F, T) on the grid, zero on padding
        xc = (on_grid(x) * keep[:, :, None]).transpose(1, 2)
        keep = keep[:, None, :]  # (B, 1, T)
        parts = []
        for i, q in enumerate(self.quantiles):
            out = self.conv(i, xc)  # (B, 84, T)
            bias = getattr(self, f"b{i}")  # (84, q)
            # one bias at a time, so memory stays that of the convolution's output whatever T:
            # (B, 84, T) > (1, 84, 1) -> the share of valid steps above it (B, 84)
            cols = [
                ((out > bias[None, :, j, None]).to(x.dtype) * keep).sum(-1) / n for j in range(q)
            ]
            # q x (B, 84) -> (B, 84, q) -> (B, 84·q)
            parts.append(torch.stack(cols, dim=-1).flatten(1))
        return torch.cat(parts, dim=1)

    def scores(self, x: Tensor, lengths: Tensor) -> Tensor:
        """(B, T, F) -> (B, N) ridge scores (about +1 for the class, -1 for the others)."""
        return self.features(x, lengths) @ self.coef.T + self.intercept

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        """(B, T, F) -> (B, N) logits: the scores sharpened by the fitted temperature."""
        return self.scores(x, lengths) * self.temperature


def _batched_features(part: KernelPart, X: list[np.ndarray], batch: int = 64) -> Tensor:
    """(n,) list of (T_i, F) scaled arrays -> (n, P) float64 features, in input order."""
    from ..batching import collate

    out = []
    with torch.no_grad():
        for s in range(0, len(X), batch):
            b = collate(X[s : s + batch])
            out.append(part.features(b.x, b.lengths).double())
    return torch.cat(out) if out else torch.zeros(0, part.n_features, dtype=torch.float64)


def fit_kernel_part(
    X: list[np.ndarray], y: np.ndarray, n_classes: int, features: int, seed: int
) -> tuple[KernelPart, dict]:
    """Set a KernelPart from scaled training series ``X`` and class indices ``y``: kernels on
    random channel subsets, biases from quantiles of the outputs on random training series, then a
    ridge whose penalty is chosen by exact leave-one-out accuracy, and a temperature that makes its
    leave-one-out scores the most likely. Returns the part and a report (the penalty, the
    leave-one-out accuracy, the number of features and of sequences the ridge saw)."""
    rng = np.random.default_rng(seed)
    channels = int(X[0].shape[1])
    length = int(np.median([len(a) for a in X]))
    dilations, quantiles = plan(length, features)
    part = KernelPart(channels, n_classes, dilations, quantiles)
    base = kernel_weights()
    phi = (math.sqrt(5) - 1) / 2
    j = 0
    with torch.no_grad():
        for i, q in enumerate(quantiles):
            w = torch.zeros(N_KERNELS, channels, WIDTH)
            for k in range(N_KERNELS):
                top = math.log2(min(channels, WIDTH) + 1)
                m = min(channels, int(2.0 ** rng.uniform(0.0, top)))
                w[k, rng.choice(channels, m, replace=False)] = base[k]
            getattr(part, f"w{i}").copy_(w)
            # the thresholds: quantiles (a low-discrepancy sequence of levels) of each kernel's
            # output on one random training series
            a = torch.as_tensor(X[int(rng.integers(len(X)))], dtype=torch.float32)
            out = part.conv(i, on_grid(a).T[None])[0]  # (84, T_a)
            levels = torch.tensor([((j + r + 1) * phi) % 1.0 for r in range(q)])
            j += q
            getattr(part, f"b{i}").copy_(torch.quantile(out, levels, dim=1).T)
    idx = np.arange(len(X))
    if len(X) > MAX_RIDGE:  # a stratified sample keeps every class's share
        idx = np.sort(
            np.concatenate(
                [
                    rng.permutation(np.flatnonzero(y == c))[
                        : max(1, round(MAX_RIDGE * np.mean(y == c)))
                    ]
                    for c in np.unique(y)
                ]
            )
        )
    Z = _batched_features(part, [X[i] for i in idx])
    report = fit_ridge(part, Z, np.asarray(y)[idx], n_classes)
    report.update(features=part.n_features, dilations=list(dilations), ridge_sequences=len(idx))
    return part, report


def class_codes(y: np.ndarray, n_classes: int) -> Tensor:
    """(n,) class indices -> (n, N) float64 targets: +1 for the class, -1 for the others."""
    Y = -torch.ones(len(y), n_classes, dtype=torch.float64)
    Y[torch.arange(len(y)), torch.as_tensor(y, dtype=torch.long)] = 1.0
    return Y


class DualRidge:
    """Ridge with an unpenalised intercept on features ``Zs`` (n, P), through the eigenvectors of
    the centred Gram matrix, so that every penalty costs one matrix product: the fitted values,
    the exact leave-one-out predictions (the hat matrix's diagonal) and the primal coefficients."""

    def __init__(self, Zs: Tensor, Y: Tensor) -> None:
        self.n = Zs.shape[0]
        self.Zc = Zs - Zs.mean(0)
        self.y_mean = Y.mean(0)
        self.Y = Y
        # G = U diag(e) U^T, the n x n Gram matrix of the centred features
        e, self.U = torch.linalg.eigh(self.Zc @ self.Zc.T)
        self.e = e.clamp(min=0)
        self.UtY = self.U.T @ (Y - self.y_mean)

    def loo(self, alpha: float) -> Tensor:
        """(n, N): each row predicted by the ridge fitted without it (exact, no refitting)."""
        shrink = self.e / (self.e + alpha)
        fitted = self.U @ (shrink[:, None] * self.UtY) + self.y_mean
        # the hat matrix's diagonal, with the intercept's 1/n
        h = (self.U**2 @ shrink) + 1.0 / self.n
        return self.Y - (self.Y - fitted) / (1.0 - h).clamp(min=1e-9)[:, None]

    def coef(self, alpha: float) -> Tensor:
        """(P, N): W = Zc^T (G + alpha I)^-1 (Y - mean); predictions (Z - mean(Z)) W + mean(Y)."""
        return self.Zc.T @ (self.U @ ((1.0 / (self.e + alpha))[:, None] * self.UtY))


def fit_ridge(part: KernelPart, Z: Tensor, y: np.ndarray, n_classes: int) -> dict:
    """Ridge regression of +-1 class codes on standardised features, the penalty chosen by exact
    leave-one-out accuracy (ties: the lower leave-one-out squared error); the coefficients are
    folded back onto the raw features and written into ``part`` with a temperature that makes the
    leave-one-out scores the most likely."""
    n = Z.shape[0]
    mean = Z.mean(0)
    std = Z.std(0, unbiased=False)
    std = torch.where(std > 1e-12, std, torch.ones_like(std))
    Y = class_codes(y, n_classes)
    ridge = DualRidge((Z - mean) / std, Y)
    yt = torch.as_tensor(y, dtype=torch.long)
    best = None
    for alpha in ALPHAS * n:
        loo = ridge.loo(float(alpha))
        acc = float((loo.argmax(1) == yt).double().mean())
        err = float(((loo - Y) ** 2).mean())
        if best is None or (acc, -err) > (best[0], -best[1]):
            best = (acc, err, float(alpha), loo)
    acc, _, alpha, loo = best
    W = ridge.coef(alpha)
    coef = (W / std[:, None]).T
    intercept = ridge.y_mean - (mean / std) @ W
    logp = [torch.log_softmax(t * loo, 1)[torch.arange(n), yt].mean() for t in TEMPERATURES]
    temperature = float(TEMPERATURES[int(torch.stack(logp).argmax())])
    with torch.no_grad():
        part.coef.copy_(coef.float())
        part.intercept.copy_(intercept.float())
        part.temperature.fill_(temperature)
    return {"alpha": alpha / n, "loo_accuracy": round(acc, 4), "temperature": temperature}
