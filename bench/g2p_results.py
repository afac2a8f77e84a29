"""CMUdict grapheme->phoneme and Tatoeba eng->fra with `Seq2Seq`: train, evaluate, print a table.

    .venv/bin/python bench/g2p_results.py [--max-words N] [--epochs E] [--hidden H] [--threads 1]
        [--attention general,none] [--beam 5] [--tatoeba-epochs E | --skip-tatoeba]
        [--skip-g2p] [--json bench/results/g2p.json]

Protocol (fixed, so runs are comparable):
- CMUdict (../shared/data/seq2seq/cmudict/cmudict.dict), stress digits stripped (39 phonemes, as in
  the G2P papers quoted in the README) unless --keep-stress, every pronunciation kept. Split by
  unique word with `split_by_source(pairs, (0.9, 0.1), seed=0)`: 90% of the words for training
  (`--max-words` keeps that many of them, chosen by the same hash), 10% held out for testing. A
  validation 5% of the training words (never test words) drives early stopping / lr decay.
- Scored per held-out word against all its pronunciations: WER = share of words whose predicted
  pronunciation matches none of them; PER = summed edit distance / reference length (closest one).
- Tatoeba eng-fra (5,000 pairs): lowercased, words and punctuation as tokens; split by unique English
  sentence (90/10, seed 0); BLEU by sacrebleu (13a tokenisation) with all French translations of a
  sentence as references.
Each model is evaluated with greedy decoding and with beam search (--beam). Prints one row per
(model, decoding) and a JSON object (also written to --json).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "seq2seq"


def _log(args, name: str) -> Path | None:
    """Where a run's per-epoch JSONL log goes (--log-dir), to follow a long run."""
    if args.log_dir is None:
        return None
    args.log_dir.mkdir(parents=True, exist_ok=True)
    return args.log_dir / f"{name}.jsonl"


def _g2p(args, results: dict) -> None:
    from seqshape.api.seq2seq import Seq2Seq, group_by_source
    from seqshape.data.pairs import read_cmudict, split_by_source
    from seqshape.train import text_metrics

    pairs = read_cmudict(SHARED / "cmudict/cmudict.dict", strip_stress=not args.keep_stress)
    train, test = split_by_source(pairs, (0.9, 0.1), seed=0)
    n_words = train.unique_sources()
    if args.max_words and args.max_words < n_words:
        share = args.max_words / n_words
        train = split_by_source(train, (share, 1 - share), seed=1)[0]
    if args.max_test_words and args.max_test_words < test.unique_sources():
        share = args.max_test_words / test.unique_sources()
        test = split_by_source(test, (share, 1 - share), seed=1)[0]
    results["g2p_data"] = {
        "train_words": train.unique_sources(),
        "train_pairs": len(train),
        "test_words": test.unique_sources(),
        "test_pairs": len(test),
        "stress": "kept" if args.keep_stress else "stripped",
    }
    print(f"CMUdict: {results['g2p_data']}", flush=True)
    for attention in args.attention.split(","):
        t0 = time.perf_counter()
        model = Seq2Seq(
            attention=attention,
            hidden_size=args.hidden,
            embedding_size=args.embedding,
            num_layers=args.layers,
            dropout=args.dropout,
            label_smoothing=args.label_smoothing,
            epochs=args.epochs,
            batch_size=args.batch_size,
            lr=args.lr,
            patience=args.patience or args.epochs,
            lr_schedule=args.lr_schedule,
            threads=args.threads,
            progress=False,
        ).fit(train, log_path=_log(args, f"g2p_{attention}"))
        seconds = time.perf_counter() - t0
        if args.save is not None:
            model.save(args.save / attention)
        row = {
            "task": "g2p",
            "attention": attention,
            "train_seconds": round(seconds, 1),
            "epochs_run": model.metrics["epochs_run"],
            "best_epoch": model.metrics["best_epoch"],
        }
        for beam in (1, args.beam):
            r = model.evaluate(test, beam_size=beam)
            key = "greedy" if beam == 1 else f"beam{beam}"
            row[key] = {k: r[k] for k in ("wer", "token_error_rate", "exact_match", "n")}
            row[key]["decode_seconds"] = r["decode_seconds"]
            print(
                f"g2p {attention:8s} {key:6s} WER {r['wer']:.4f} PER {r['token_error_rate']:.4f} "
                f"(n={r['n']}, decode {r['decode_seconds']:.1f} s)",
                flush=True,
            )
        # a common evaluation mistake, measured: scoring against the first pronunciation only
        words, refs = group_by_source(test.sources, test.targets)
        hyps = model.predict(words)
        row["greedy_wer_first_pronunciation_only"] = text_metrics.wer_sentence_level(
            [r[0] for r in refs], hyps
        )
        print(
            f"g2p {attention:8s} train {seconds:.0f} s, {row['epochs_run']} epochs; "
            f"WER against the first pronunciation only: "
            f"{row['greedy_wer_first_pronunciation_only']:.4f}",
            flush=True,
        )
        results["runs"].append(row)


def _tatoeba(args, results: dict) -> None:
    from seqshape.api.seq2seq import Seq2Seq
    from seqshape.data.pairs import read_tsv_pairs, split_by_source

    pairs = read_tsv_pairs(SHARED / "tatoeba/eng-fra.txt", tokenize="words", lowercase=True)
    train, test = split_by_source(pairs, (0.9, 0.1), seed=0)
    results["tatoeba_data"] = {
        "train_pairs": len(train),
        "train_sentences": train.unique_sources(),
        "test_pairs": len(test),
        "test_sentences": test.unique_sources(),
    }
    print(f"Tatoeba: {results['tatoeba_data']}", flush=True)
    t0 = time.perf_counter()
    model = Seq2Seq(
        attention="general",
        hidden_size=args.hidden,
        embedding_size=args.embedding,
        dropout=0.3,
        epochs=args.tatoeba_epochs,
        batch_size=32,
        lr=args.lr,
        patience=5,
        threads=args.threads,
    ).fit(train, log_path=_log(args, "tatoeba"))
    seconds = time.perf_counter() - t0
    row = {
        "task": "tatoeba",
        "attention": "general",
        "train_seconds": round(seconds, 1),
        "epochs_run": model.metrics["epochs_run"],
        "best_epoch": model.metrics["best_epoch"],
    }
    for beam in (1, args.beam):
        r = model.evaluate(test, beam_size=beam)
        key = "greedy" if beam == 1 else f"beam{beam}"
        row[key] = {k: r[k] for k in ("bleu", "exact_match", "token_error_rate", "n")}
        print(f"tatoeba general {key:6s} BLEU {r['bleu']:.2f} (n={r['n']})", flush=True)
    results["runs"].append(row)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--max-words", type=int, default=0, help="training words (0: all ~113k)")
    ap.add_argument("--max-test-words", type=int, default=0, help="test words (0: all ~12.6k)")
    ap.add_argument("--epochs", type=int, default=7)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--embedding", type=int, default=64)
    ap.add_argument("--dropout", type=float, default=0.1)
    ap.add_argument("--layers", type=int, default=1)
    ap.add_argument("--label-smoothing", type=float, default=0.0)
    ap.add_argument(
        "--patience",
        type=int,
        default=0,
        help="early-stopping patience (lr decays after half of it); 0: --epochs, i.e. never",
    )
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--lr-schedule", choices=("plateau", "cosine"), default="plateau")
    ap.add_argument("--save", type=Path, default=None, help="save the G2P model directory here")
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--attention", default="general,none")
    ap.add_argument("--beam", type=int, default=5)
    ap.add_argument("--keep-stress", action="store_true")
    ap.add_argument("--tatoeba-epochs", type=int, default=20)
    ap.add_argument("--skip-tatoeba", action="store_true")
    ap.add_argument("--skip-g2p", action="store_true")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--log-dir", type=Path, default=None, help="per-epoch JSONL logs")
    args = ap.parse_args()

    from seqshape import runtime

    runtime.configure(args.threads)
    results: dict = {"args": {k: str(v) for k, v in vars(args).items()}, "runs": []}
    if not args.skip_g2p:
        _g2p(args, results)
    if not args.skip_tatoeba:
        _tatoeba(args, results)
    print(json.dumps(results))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
