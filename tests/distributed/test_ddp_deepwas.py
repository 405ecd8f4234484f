"""DeepWAS data-parallel training on 2 Gloo ranks equals single-process training."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from torchgenetics.deepwas.datamodule import RegionDataModule
from torchgenetics.deepwas.module import DeepWASModule
from torchgenetics.deepwas.priors import MLPPrior
from torchgenetics.deepwas.simulate import simulate_example
from torchgenetics.deepwas.trainer import Trainer
from torchgenetics.distributed.training import ShardedObjective, shard_regions
from torchgenetics.errors import InputError

EPOCHS = 2
HAS_LIGHTNING = importlib.util.find_spec("lightning") is not None


def _setup():
    """8 regions (4 for training, chromosome 2 held out); batches of 3, 1 per epoch."""
    ex = simulate_example(n_variants=800, n_reference=300, block_size=100, chromosomes=2, seed=3)
    dm = RegionDataModule(ex.regions, batch_size=3, val_chromosomes=["2"], seed=5)
    torch.manual_seed(0)
    prior = MLPPrior(6, hidden=(8,), dropout=0.2)  # dropout: the masks must match too
    module = DeepWASModule(prior, likelihood={"method": "exact"}, log_scale=dm.moment_log_variance(),
                           learn_sigma=True, optim={"lr": 0.05, "clip_norm": 1.0, "pct_start": 0.5})
    return module, dm


def _state(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _train(distributed):
    module, dm = _setup()
    torch.manual_seed(1)  # dropout masks
    hist = Trainer(max_epochs=EPOCHS, restore_best=False, distributed=distributed).fit(module, dm)
    return _state(module), hist.steps, hist.epochs


def _train_lightning(distributed):
    import lightning.pytorch as pl

    from torchgenetics.deepwas.lightning import lightning_datamodule, lightning_module

    module, dm = _setup()
    torch.manual_seed(1)
    options = dict(strategy="ddp", devices=2, use_distributed_sampler=False) if distributed else {}
    trainer = pl.Trainer(max_epochs=EPOCHS, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                         **options)
    trainer.fit(lightning_module(module), datamodule=lightning_datamodule(dm))
    return (_state(module), float(trainer.callback_metrics["val_nll"]), int(trainer.global_step),
            int(trainer.world_size))


def _train_rank(with_lightning):
    plain = _train(distributed=True)
    return plain, _train_lightning(distributed=True) if with_lightning else None


@pytest.fixture(scope="module")
def ranks(cluster):
    """Both ranks' results: plain-torch DDP, then Lightning's DDP strategy (one process group)."""
    return cluster.run(_train_rank, args=(HAS_LIGHTNING,))


def test_ddp_epochs_equal_single_process_training(ranks):
    ref_state, ref_steps, ref_epochs = _train(distributed=False)
    results = [plain for plain, _ in ranks]
    assert len(ref_steps) == 2 * EPOCHS
    for state, steps, epochs in results:
        for name, value in ref_state.items():
            assert torch.allclose(state[name], value, rtol=0, atol=1e-10), name
        assert steps["loss"].tolist() == pytest.approx(ref_steps["loss"].tolist(), rel=1e-12)
        assert steps["grad_norm"].tolist() == pytest.approx(ref_steps["grad_norm"].tolist(), rel=1e-10)
        assert steps["lr"].tolist() == ref_steps["lr"].tolist()
        assert epochs["val_nll"].tolist() == pytest.approx(ref_epochs["val_nll"].tolist(), rel=1e-12)
    # both ranks hold the very same weights
    for name in ref_state:
        assert torch.equal(results[0][0][name], results[1][0][name])
    # training moved the weights away from the start
    start, _ = _setup()
    assert not torch.allclose(start.state_dict()["log_scale"], ref_state["log_scale"])


@pytest.mark.skipif(not HAS_LIGHTNING, reason="the lightning extra is not installed")
def test_lightning_ddp_strategy_equals_single_process_lightning(ranks):
    ref_state, ref_val, ref_steps, _ = _train_lightning(distributed=False)
    assert ref_steps == 2 * EPOCHS
    for _, (state, val_nll, steps, world) in ranks:
        assert steps == ref_steps and world == 2
        for name, value in ref_state.items():
            assert torch.allclose(state[name], value, rtol=0, atol=1e-10), name
        assert val_nll == pytest.approx(ref_val, rel=1e-12)


def test_shards_partition_each_batch_and_one_rank_is_the_plain_loss():
    module, dm = _setup()
    batch = dm.train_regions
    parts = [shard_regions(batch, r, 3) for r in range(3)]
    assert sorted(i for p in parts for i in p) == list(range(len(batch)))
    module.eval()  # no dropout: the two losses see the same network
    loss, part = ShardedObjective(module, rank=0, world=1)(batch)
    assert torch.allclose(loss, module.training_step(batch), rtol=1e-14, atol=0)
    # the shares of 3 ranks add up to the loss; each is scaled by the world size
    shares = [ShardedObjective(module, rank=r, world=3)(batch) for r in range(3)]
    assert torch.allclose(sum(p for _, p in shares), loss.detach(), rtol=1e-14, atol=0)
    assert all(torch.allclose(s, 3 * p) for s, p in shares)
    with pytest.raises(InputError, match="rank 3"):
        ShardedObjective(module, rank=3, world=3)
    with pytest.raises(InputError, match="process group"):
        Trainer(max_epochs=1, distributed=True).fit(module, dm)
