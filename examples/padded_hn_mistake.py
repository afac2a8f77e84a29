"""The padded-h_n mistake, measured on JapaneseVowels.

Train a many-to-one classifier (one unidirectional LSTM layer, so that its encoder *is* one
`nn.LSTM`), then score the test split the way a hand-written loop often does: pad each batch to its
longest sequence, run the `nn.LSTM` without packing, and feed `h_n[-1]` to the head. `h_n` is the
state after the last *padded* step, not after each sequence's own last step. The script prints how
far the logits drift from the right ones (each sequence's output at step ``length - 1``, which is
what `SequenceClassifier` uses) and how many predictions change.

    python examples/padded_hn_mistake.py            # the numbers quoted in docs/classify.md
    python examples/padded_hn_mistake.py --small    # a quick run (the test suite runs this)
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from seqshape import SequenceClassifier, datasets
from seqshape.batching import collate


def score_both_ways(clf: SequenceClassifier, X: list[np.ndarray], batch_size: int):
    """Logits (n, N) two ways: right (true last step) and wrong (h_n of the padded batch)."""
    lstm = clf.net.encoder.layers[0]["fwd"]  # the one nn.LSTM(F, H, batch_first=True)
    head = clf.net.head
    right, wrong, padded_steps = [], [], []
    clf.net.eval()
    with torch.no_grad():
        for start in range(0, len(X), batch_size):  # file order, as a plain DataLoader would
            batch = collate(X[start : start + batch_size])
            # (B, T, F) -> outputs (B, T, H); h_n (1, B, H): the state after step T-1, padding included
            outputs, (h_n, _) = lstm(batch.x)
            # (B, T, H) -> (B, H): each sequence's output at its own last step
            last = outputs[torch.arange(len(batch.lengths)), batch.lengths - 1]
            right.append(head(last))
            wrong.append(head(h_n[-1]))
            padded_steps.append(batch.x.shape[1] - batch.lengths)
            # the library's own forward gives the right logits (the same gather, done for you)
            assert torch.allclose(clf.net(batch.x, batch.lengths), right[-1], atol=1e-5)
    return torch.cat(right), torch.cat(wrong), torch.cat(padded_steps)


def report(name: str, right, wrong, padded, y_true: np.ndarray) -> None:
    drift = (wrong - right).abs().max(dim=1).values  # (n,): largest logit change per sequence
    p_right, p_wrong = torch.softmax(right, 1), torch.softmax(wrong, 1)
    changed = right.argmax(1) != wrong.argmax(1)
    has_pad = padded > 0
    acc_right = float((right.argmax(1).numpy() == y_true).mean())
    acc_wrong = float((wrong.argmax(1).numpy() == y_true).mean())
    print(f"[{name}]")
    print(
        f"  sequences with padding: {int(has_pad.sum())} of {len(padded)}, "
        f"{float(padded[has_pad].float().mean()) if has_pad.any() else 0:.1f} padded steps on "
        "average"
    )
    print(
        f"  logit drift on padded sequences: mean {float(drift[has_pad].mean()):.3f}, "
        f"max {float(drift.max()):.3f} (unpadded: {float(drift[~has_pad].max() if (~has_pad).any() else 0):.1e})"
    )
    print(f"  largest change of a class probability: {float((p_wrong - p_right).abs().max()):.3f}")
    print(f"  predictions changed: {int(changed.sum())} of {len(changed)}")
    print(
        f"  test accuracy: true last step {acc_right:.4f}, h_n of the padded batch {acc_wrong:.4f}"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="a quick run: 3 epochs, H=16")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--hidden", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=64, help="evaluation batch size")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    epochs = args.epochs or (3 if args.small else 150)
    hidden = args.hidden or (16 if args.small else 64)

    train = datasets.load_japanese_vowels("train")
    test = datasets.load_japanese_vowels("test")
    t0 = time.perf_counter()
    clf = SequenceClassifier(
        hidden_size=hidden,
        num_layers=1,
        bidirectional=False,  # one nn.LSTM: the mistake below is exactly the textbook one
        pooling="last",
        frontend="none",  # the LSTM reads the (scaled) features themselves, as in the textbook
        kernels=0,  # the LSTM alone: no kernel part mixed into its answer
        epochs=epochs,
        seed=args.seed,
        threads=args.threads,
    ).fit(train)
    print(
        f"trained a unidirectional LSTM classifier, H={hidden}, on JapaneseVowels "
        f"({clf.metrics['epochs_run']} epochs, {time.perf_counter() - t0:.1f} s)"
    )
    X = clf.scaler.transform(test.X)
    index = {c: i for i, c in enumerate(clf.classes_)}
    y_true = np.array([index[v] for v in test.y])
    right, wrong, padded = score_both_ways(clf, X, args.batch_size)
    report(f"test split, file order, batches of {args.batch_size}", right, wrong, padded, y_true)
    right, wrong, padded = score_both_ways(clf, X, len(X))
    report("test split, one batch padded to the longest (29 steps)", right, wrong, padded, y_true)


if __name__ == "__main__":
    main()
