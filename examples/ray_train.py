"""Data-parallel training under Ray Train: a TorchTrainer runs a seqshape classifier on 2 CPU workers.

Ray Train starts the workers and their torch.distributed process group (gloo on the CPU) before it
calls `train_func` on each; `SequenceClassifier.fit` finds that group and trains in it with
DistributedDataParallel, exactly as under torchrun: each worker takes its share of every epoch's
batches, rank 0 validates, the weights stay identical on every worker, and rank 0 alone saves the
model and hands it to Ray as the run's checkpoint. seqshape neither starts nor ends Ray's group.
The data is the bundled JapaneseVowels (`seqshape.datasets`); docs/distributed.md explains the rest.

    pip install 'seqshape[ray]'
    python examples/ray_train.py              # 2 workers, 40 epochs, H=64
    python examples/ray_train.py --small      # a quick run (the test suite runs this)
"""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

# This script starts a Ray of its own on this machine alone: it sends no usage report over the
# network and keeps every address on the loopback interface. On a Ray cluster leave these two
# lines out and join it with ray.init(address="auto") in place of `start_local_ray`.
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

import ray  # noqa: E402
import ray.train  # noqa: E402
from ray.train.torch import TorchTrainer  # noqa: E402

from seqshape import SequenceClassifier, datasets  # noqa: E402
from seqshape.train import distributed  # noqa: E402


def train_func(config: dict) -> SequenceClassifier:
    """What every Ray worker runs: fit in the process group Ray started; rank 0 saves.

    ``config``: ``out`` (the model directory rank 0 writes), ``epochs``, ``hidden``,
    ``batch_size`` (per worker), ``seed``, ``threads`` (per worker). Returns the fitted
    classifier (Ray ignores it; a function that wraps this one may look at it).
    """
    train = datasets.load_japanese_vowels("train")
    clf = SequenceClassifier(
        hidden_size=config["hidden"],
        conv_channels=config["hidden"],
        epochs=config["epochs"],
        batch_size=config["batch_size"],
        val_fraction=0.1,  # a stratified 10%, the same on every worker (seeded); rank 0 scores it
        seed=config["seed"],
        threads=config["threads"],
        progress=False,
    )
    clf.fit(train)
    metrics = {k: clf.metrics[k] for k in ("best_epoch", "val_accuracy", "epochs_run")}
    if distributed.is_main():  # rank 0 alone writes; the other workers hold the same weights
        clf.save(config["out"])
        # Ray copies the directory to the run's storage: the driver finds it there even when
        # rank 0 ran on another machine
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(config["out"]))
    else:
        ray.train.report(metrics)  # every worker reports: Ray waits for all of them
    return clf


def make_trainer(
    loop: Callable[[dict], object], config: dict, *, workers: int, storage: Path
) -> TorchTrainer:
    """A TorchTrainer running ``loop(config)`` on ``workers`` CPU workers of 1 CPU each, in a
    gloo process group; Ray's records and the reported checkpoint go under ``storage``."""
    return TorchTrainer(
        loop,
        train_loop_config=config,
        scaling_config=ray.train.ScalingConfig(
            num_workers=workers, use_gpu=False, resources_per_worker={"CPU": 1}
        ),
        run_config=ray.train.RunConfig(storage_path=str(storage.resolve()), name="seqshape"),
    )


def start_local_ray(cpus: int) -> None:
    """A new Ray of ``cpus`` CPUs on this machine (never one that `ray start` left running): no
    dashboard, a small object store (the workers exchange nothing big through it)."""
    ray.init(
        address="local",
        num_cpus=cpus,
        include_dashboard=False,
        object_store_memory=100 * 1024**2,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="a quick run: 3 epochs, H=16")
    parser.add_argument("--workers", type=int, default=2, help="Ray workers, 1 CPU each")
    parser.add_argument("--out", type=Path, default=None, help="where rank 0 saves the model")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="ray_train-"))
    config = {
        "out": str((args.out or work / "model").resolve()),
        "epochs": 3 if args.small else 40,
        "hidden": 16 if args.small else 64,
        "batch_size": 8,
        "seed": args.seed,
        "threads": 1,
    }
    start_local_ray(args.workers)
    try:
        result = make_trainer(train_func, config, workers=args.workers, storage=work).fit()
    finally:
        ray.shutdown()
    print(f"{args.workers} Ray workers trained; rank 0 reported {result.metrics}")

    with result.checkpoint.as_directory() as model_dir:
        clf = SequenceClassifier.load(model_dir)
    test = datasets.load_japanese_vowels("test")
    print(f"model written by rank 0 to {config['out']}, checkpoint {result.checkpoint.path}")
    print(f"test accuracy {clf.score(test):.4f} (n={len(test)})")


if __name__ == "__main__":
    main()
