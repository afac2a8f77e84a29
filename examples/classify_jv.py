"""Many-to-one on real data: JapaneseVowels speaker classification (the example of docs/classify.md).

270 training and 370 test utterances of 9 speakers, each a (T_i, 12) array of LPC coefficients
with T_i between 7 and 29: sequences of different lengths in, one label out. The data ships inside
the package (`seqshape.datasets`).

    python examples/classify_jv.py               # default settings (about 5-20 s on 1-2 cores)
    python examples/classify_jv.py --small       # a quick run (the test suite runs this)
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from seqshape import SequenceClassifier, datasets


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="a quick run: 3 epochs, H=16")
    parser.add_argument("--out", type=Path, default=None, help="where to save the model")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)

    # 1. data: lists of (T_i, F=12) float arrays and one label per sequence; no padding code
    train = datasets.load_japanese_vowels("train")
    test = datasets.load_japanese_vowels("test")
    lengths = [len(a) for a in train.X]
    print(
        f"train: {len(train)} sequences, F={train.n_features}, T from {min(lengths)} to {max(lengths)}"
    )

    # 2. fit: the defaults (bidirectional LSTM, H=128, early stopping on a stratified 10% of train)
    options = {"epochs": 3, "hidden_size": 16} if args.small else {}
    clf = SequenceClassifier(seed=args.seed, threads=args.threads, **options).fit(train)
    print(f"trained {clf.metrics['epochs_run']} epochs in {clf.metrics['train_seconds']:.1f} s")

    # 3. evaluate once on the test split
    report = clf.evaluate(test)
    print(
        f"test accuracy {report['accuracy']:.4f}, macro F1 {report['macro_f1']:.4f} (n={report['n']})"
    )

    # 4. predict: any lengths, in any order; one row of probabilities per sequence (B, N)
    proba = clf.predict_proba(test.X[:3])
    print(f"predict_proba on 3 sequences of lengths {[len(a) for a in test.X[:3]]}: {proba.shape}")
    print(f"predicted {list(clf.predict(test.X[:3]))}, true {test.y[:3]}")

    # 5. padding never changes an answer: a sequence scored alone = scored beside longer ones
    alone = clf.predict_proba([test.X[0]])
    together = clf.predict_proba([test.X[0], max(test.X, key=len)])[:1]
    print(f"alone vs in a padded batch: max difference {np.abs(alone - together).max():.1e}")

    # 6. save and load: JSON + safetensors, nothing pickled
    out = args.out or Path(tempfile.mkdtemp(prefix="classify_jv-")) / "model"
    clf.save(out)
    same = SequenceClassifier.load(out)
    assert np.allclose(same.predict_proba(test.X[:5]), clf.predict_proba(test.X[:5]), atol=1e-6)
    print(f"saved to {out} and loaded back: {sorted(p.name for p in out.iterdir())}")

    # 7. the shapes, stage by stage, on three real test sequences
    print()
    print(clf.explain(test.X[:3]))


if __name__ == "__main__":
    main()
