"""Training in a process group the caller started: Ray Train, and what `distributed.init` checks.

Ray Train's TorchTrainer starts its workers and their gloo process group before it calls the user's
function; seqshape must train in that group (its rank and world size, whatever the environment
says), leave it up for Ray to end, and write the model from rank 0 only. The Ray test runs the
recipe of examples/ray_train.py (`train_func`) on 2 local workers of 1 CPU and 1 thread each,
JapaneseVowels, a tiny classifier (H=8, 2 epochs), every worker saving to a directory of its own
so that a write from rank 1 would show.

The other tests start a caller's group in this one process with torch's in-process fake backend
(it carries no data, which `init` does not need): one registered for CPU and CUDA tensors as
torch registers it, and one for CUDA tensors only, standing for an NCCL-only group.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch.distributed as dist
from torch import nn

from seqshape import SequenceClassifier
from seqshape.errors import ConfigError
from seqshape.train import distributed

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "ray_train.py"


def digest(model: nn.Module) -> str:
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().contiguous().numpy().tobytes())
    return h.hexdigest()


def load_example():
    spec = importlib.util.spec_from_file_location("seqshape_example_ray_train", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def ray_run(tmp_path_factory):
    pytest.importorskip("ray.train", reason="the `ray` extra is not installed")
    example = load_example()  # sets Ray's loopback and no-usage-report variables first
    import ray
    import ray.cloudpickle

    # the workers cannot import the example or this test module by name: send them by value
    ray.cloudpickle.register_pickle_by_value(example)
    if __name__ in sys.modules:
        ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    root = tmp_path_factory.mktemp("ray")
    (root / "models").mkdir()
    (root / "probe").mkdir()
    train_func = example.train_func

    def probe(config: dict) -> None:
        # the recipe, with a model directory per worker: rank 1 must leave its own unwritten
        rank = ray.train.get_context().get_world_rank()
        clf = train_func(dict(config, out=f"{config['models']}/rank{rank}"))
        distributed.shutdown()  # a no-op here: the group is Ray's
        facts = {
            "rank": distributed.rank(),
            "world": distributed.world(),
            "ray_rank": rank,
            "digest": digest(clf.net),
            "rank_sequences": [row["rank_sequences"] for row in clf.train_result.history],
            "group_up": dist.is_initialized(),
        }
        (Path(config["probe"]) / f"rank{rank}.json").write_text(json.dumps(facts))

    config = {
        "models": str(root / "models"),
        "probe": str(root / "probe"),
        "epochs": 2,
        "hidden": 8,
        "batch_size": 16,
        "seed": 0,
        "threads": 1,
    }
    example.start_local_ray(2)
    try:
        result = example.make_trainer(probe, config, workers=2, storage=root / "ray").fit()
    finally:
        ray.shutdown()
    facts = [json.loads((root / "probe" / f"rank{r}.json").read_text()) for r in (0, 1)]
    return root, result, facts


def test_both_ray_workers_end_with_the_same_weights(ray_run):
    _, _, (zero, one) = ray_run
    assert (zero["rank"], zero["world"], one["rank"], one["world"]) == (0, 2, 1, 2)
    assert (zero["ray_rank"], one["ray_rank"]) == (0, 1)  # seqshape's rank is Ray's rank
    assert zero["digest"] == one["digest"]
    # they trained together: every epoch's batches were split between them (243 training
    # sequences after the 10% validation split; a rank short of a batch wraps around)
    assert zero["rank_sequences"] == one["rank_sequences"]
    assert len(zero["rank_sequences"]) == 2
    for shares in zero["rank_sequences"]:
        assert len(shares) == 2 and min(shares) > 0 and sum(shares) >= 243, shares
    # seqshape left Ray's group up for Ray to end
    assert zero["group_up"] and one["group_up"]


def test_rank_zero_alone_writes_the_model_and_ray_keeps_it(ray_run):
    root, result, (zero, _) = ray_run
    assert sorted(p.name for p in (root / "models").iterdir()) == ["rank0"]
    assert digest(SequenceClassifier.load(root / "models" / "rank0").net) == zero["digest"]
    # rank 0's report carries the model directory as the run's checkpoint
    assert result.metrics["epochs_run"] == 2
    with result.checkpoint.as_directory() as d:
        assert digest(SequenceClassifier.load(d).net) == zero["digest"]


@pytest.fixture
def callers_group(monkeypatch):
    """Start a 2-rank group in this process the way a launcher would (this process: rank 1)."""
    from torch.testing._internal.distributed import fake_pg

    # torchrun's variables, contradicting the group: the group wins
    for name, value in {"WORLD_SIZE": "5", "RANK": "3", "LOCAL_WORLD_SIZE": "5"}.items():
        monkeypatch.setenv(name, value)

    def start(backend: str) -> None:
        dist.init_process_group(backend, store=fake_pg.FakeStore(), rank=1, world_size=2)

    yield start
    if dist.is_initialized():
        dist.destroy_process_group()


def test_a_callers_group_is_used_as_it_is_and_left_up(callers_group):
    callers_group("fake")  # torch registers it for CPU and CUDA tensors, like gloo
    assert distributed.init(nn.Linear(2, 2)) is True
    assert (distributed.rank(), distributed.world(), distributed.is_main()) == (1, 2, False)
    assert distributed.where() == " on rank 1 of 2"
    distributed.shutdown()
    assert dist.is_initialized()  # the caller ends its group, not seqshape


def test_a_callers_group_without_a_cpu_backend_is_a_config_error(callers_group):
    name = "seqshape_cuda_only"
    if name not in dist.Backend.backend_list:
        from torch.testing._internal.distributed import fake_pg

        dist.Backend.register_backend(
            name, fake_pg._create_fake_pg, extended_api=True, devices=["cuda"]
        )
    callers_group(name)
    with pytest.raises(ConfigError) as e:
        distributed.init(nn.Linear(2, 2))
    msg = str(e.value)
    assert "\n" not in msg
    assert "on rank 1 of 2 has no CPU backend (cuda:seqshape_cuda_only)" in msg
    assert "'cpu:gloo,cuda:nccl'" in msg
