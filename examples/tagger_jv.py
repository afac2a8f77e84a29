"""Many-to-many, aligned: label every step of a JapaneseVowels utterance with its speaker.

The same data as examples/classify_jv.py, asked a per-step question: each (T_i, 12) utterance gets
a (T_i,) row of labels, one per step. Batches are padded to their longest sequence; the padded
steps are masked out of the loss and of every metric, and a sequence's labels do not depend on
what it was batched with. A bidirectional tagger sees the whole utterance at every step, so early
steps can be labelled as well as late ones; the script prints the accuracy by step position.

    python examples/tagger_jv.py             # default settings
    python examples/tagger_jv.py --small     # a quick run (the test suite runs this)
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from seqshape import SequenceTagger, datasets


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="a quick run: 3 epochs, H=16")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)

    train = datasets.load_japanese_vowels("train")
    test = datasets.load_japanese_vowels("test")
    # (T_i, F=12) inputs -> (T_i,) labels: the speaker, repeated at every step
    Y_train = [np.full(len(x), label) for x, label in zip(train.X, train.y)]
    Y_test = [np.full(len(x), label) for x, label in zip(test.X, test.y)]
    n_steps = sum(len(y) for y in Y_test)
    print(
        f"train: {len(train.X)} sequences; test: {len(test.X)} sequences, {n_steps} labelled steps"
    )

    options = dict(epochs=3, hidden_size=16) if args.small else dict(epochs=60, hidden_size=64)
    t0 = time.perf_counter()
    tagger = SequenceTagger(seed=args.seed, threads=args.threads, **options).fit(train.X, Y_train)
    print(
        f"trained {tagger.metrics.get('epochs_run', '?')} epochs in {time.perf_counter() - t0:.1f} s"
    )

    # masked metrics: every real step counts once, no padded step counts at all
    report = tagger.evaluate(test.X, Y_test)
    print(
        f"test per-step accuracy {report['accuracy']:.4f}, macro F1 {report['macro_f1']:.4f} "
        f"over {report['n_steps']} steps of {report['n']} sequences"
    )

    # (T_i, N) probabilities per sequence, one row per real step (no padding comes back)
    proba = tagger.predict_proba(test.X[:3])
    print(f"predict_proba on lengths {[len(x) for x in test.X[:3]]}: {[p.shape for p in proba]}")

    # padding never changes an answer: alone vs next to the longest test sequence
    alone = tagger.predict_proba([test.X[0]])[0]
    together = tagger.predict_proba([test.X[0], max(test.X, key=len)])[0]
    print(f"alone vs in a padded batch: max difference {np.abs(alone - together).max():.1e}")

    # accuracy by step position (first steps, middle, last steps of each utterance)
    pred = tagger.predict(test.X)
    for name, pick in [
        ("first 3 steps", slice(0, 3)),
        ("last 3 steps", slice(-3, None)),
    ]:
        hits = np.concatenate([p[pick] == y[pick] for p, y in zip(pred, Y_test)])
        print(f"  accuracy on the {name}: {hits.mean():.4f}")
    # one label per utterance by majority vote over its steps
    vote = [max(set(p.tolist()), key=p.tolist().count) for p in pred]
    print(f"majority vote per utterance: accuracy {np.mean(np.array(vote) == test.y):.4f}")


if __name__ == "__main__":
    main()
