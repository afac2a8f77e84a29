"""Seq2seq on tokens: grapheme-to-phoneme on a CMUdict excerpt (greedy vs beam, attention shapes).

Source: a word's letters (S_i tokens); target: its phonemes (U_i tokens), S_i != U_i in general.
An attention encoder-decoder LSTM is trained on an excerpt of the CMU Pronouncing Dictionary
(split by unique word, so no word is in two splits), decoded greedily and with beam search, and
the attention weights of one word are printed: one (U_i, S_i) matrix per word, rows summing to 1.

    python examples/g2p_small.py             # 8000 words, more epochs
    python examples/g2p_small.py --small     # a quick run (the test suite runs this)
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from seqshape import DataError, Seq2Seq
from seqshape.data.pairs import read_cmudict, split_by_source

CMUDICT = Path(__file__).resolve().parents[2] / "shared" / "data" / "seq2seq" / "cmudict"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="a quick run: 1500 words, 15 epochs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)

    path = CMUDICT / "cmudict.dict"
    if not path.exists():
        raise DataError(f"{path}: not found (this example needs ../shared/data/seq2seq)")
    pairs = read_cmudict(path, strip_stress=True, alternates="first")
    # an excerpt: plain alphabetic words of 4-8 letters, evenly spread over the alphabet
    keep = [i for i, s in enumerate(pairs.sources) if 4 <= len(s) <= 8 and "".join(s).isalpha()]
    n_words = 1500 if args.small else 8000
    keep = keep[:: max(1, len(keep) // n_words)][:n_words]
    train, test = split_by_source(pairs.subset(keep), (0.9, 0.1), seed=args.seed)
    print(f"CMUdict excerpt: {len(train)} training words, {len(test)} test words")
    print(f"e.g. {''.join(train.sources[0])} -> {' '.join(train.targets[0])}")

    options = (
        dict(epochs=15, hidden_size=64, embedding_size=32)
        if args.small
        else dict(epochs=30, hidden_size=128, embedding_size=64)
    )
    t0 = time.perf_counter()
    s2s = Seq2Seq(attention="general", seed=args.seed, threads=args.threads, **options).fit(train)
    print(
        f"trained {s2s.metrics.get('epochs_run', '?')} epochs in {time.perf_counter() - t0:.1f} s"
    )

    # greedy vs beam: phoneme error rate (PER) and word error rate (WER) on unseen words
    for beam in (1, 5):
        m = s2s.evaluate(test, beam_size=beam)
        print(
            f"beam {beam}: PER {m['token_error_rate']:.4f}, WER {m['wer']:.4f} "
            f"(exact match {m['exact_match']:.4f}, n={m['n']})"
        )

    # attention: for each word, (U_i, S_i) weights (output steps incl. EOS, letters)
    words = test.sources[:3]
    preds, attn = s2s.predict_with_attention(words)
    for w, p, a in zip(words, preds, attn):
        print(f"{''.join(w):>10} -> {' '.join(p):<24} attention {a.shape}")
    a = attn[0]
    assert np.allclose(a.sum(axis=1), 1.0, atol=1e-4)
    print(f"attention of {''.join(words[0])!r} (rows: phonemes + EOS, columns: letters):")
    print("        " + " ".join(f"{c:>4}" for c in words[0]))
    for p, row in zip([*preds[0], "EOS"], a):
        print(f"  {p:>5} " + " ".join(f"{v:4.2f}" for v in row))


if __name__ == "__main__":
    main()
