"""Trains a small model for tests/test_training_distributed.py, under torchrun or as a single process.

python tests/ddp_worker.py OUT_DIR
python -m torch.distributed.run --standalone --nproc-per-node 2 tests/ddp_worker.py OUT_DIR
python -m torch.distributed.run --standalone --nproc-per-node 2 tests/ddp_worker.py OUT_DIR agree
python -m torch.distributed.run --standalone --nproc-per-node 2 tests/ddp_worker.py OUT_DIR conv channels-last
python tests/ddp_worker.py OUT_DIR conv contiguous

With ``agree``, two runs where rank 1 alone decides: one where a callback stops it after epoch 2,
one where its loss is NaN in epoch 2; each rank writes what it saw to OUT_DIR/rank<R>.pt.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch

import genvae as gv


class NoiseFree(gv.VAE):
    """z = mean: the same function whatever the sharding (the reparameterisation noise of each
    rank cannot match a single process's draws, so the comparison switches it off)."""

    def sample_posterior(self, params: Any, samples: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        z = params.mean if samples is None else params.mean.expand(samples, *params.mean.shape)
        return z, gv.gaussian.log_normal(z, params.mean, params.logvar)


def build() -> NoiseFree:
    torch.manual_seed(0)
    enc = gv.encoders.MLPEncoder((1, 6, 6), hidden=(16,))
    dec = gv.decoders.MLPDecoder(2, (1, 6, 6), hidden=(16,))
    return NoiseFree(enc, dec, latent_dim=2)


def build_conv() -> NoiseFree:
    """A small convolutional VAE (what the channels-last layout applies to) on 8×8 images."""
    torch.manual_seed(0)
    enc = gv.encoders.ConvEncoder(image_size=8, channels=(4, 8), hidden=(16,))
    dec = gv.decoders.ConvDecoder(latent_dim=2, image_size=8, channels=(8, 4))
    return NoiseFree(enc, dec, latent_dim=2)


def conv(out: Path, layout: str) -> None:
    """The same training as :func:`main`'s with a convolutional model, in ``layout`` (``channels-last``
    or ``contiguous``): the state and History it ends with, written by rank 0."""
    g = torch.Generator().manual_seed(1)
    train, val = torch.rand(40, 1, 8, 8, generator=g), torch.rand(13, 1, 8, 8, generator=g)
    model = build_conv()
    trainer = gv.Trainer(model, max_epochs=3, batch_size=8, device="cpu", seed=0, drop_last=True,
                         channels_last=layout == "channels-last")  # fmt: skip
    history = trainer.fit(train, val)
    if trainer.distributed.is_main:
        state = {key: value.contiguous() for key, value in model.state_dict().items()}
        # a (8, 4, 3, 3) weight: its layout tells the two formats apart (a 1-channel one's does not)
        channels_last = not model.encoder.state_dict()["rest.1.weight"].is_contiguous()
        torch.save({"state": state, "history": history.records, "world_size": trainer.distributed.world_size,
                    "channels_last": channels_last}, out / "result.pt")  # fmt: skip
    del trainer
    gv.training.distributed.shutdown()


def data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.rand(40, 1, 6, 6, generator=g), torch.rand(13, 1, 6, 6, generator=g)


class StopOnRank(gv.training.Callback):
    """Rank ``rank`` alone decides to stop after epoch ``epoch``."""

    def __init__(self, rank: int, epoch: int) -> None:
        self.rank, self.epoch = rank, epoch

    def on_epoch_end(self, trainer: gv.Trainer, epoch: int, logs: object) -> None:
        if trainer.distributed.rank == self.rank and epoch == self.epoch:
            trainer.should_stop = True
            trainer.state.stop_reason = f"StopOnRank: rank {self.rank} asked to stop after epoch {epoch}"


class PoisonOnRank(gv.training.Callback):
    """Rank ``rank``'s KL is NaN during epoch ``epoch`` (the objective reads ``self.now``)."""

    def __init__(self, rank: int, epoch: int) -> None:
        self.rank, self.epoch, self.now = rank, epoch, False

    def on_epoch_start(self, trainer: gv.Trainer, epoch: int, logs: object) -> None:
        self.now = trainer.distributed.rank == self.rank and epoch == self.epoch

    def kl(self, out: gv.VAEOutput, x: torch.Tensor) -> torch.Tensor:
        values = gv.losses.get("kl")(out, x)
        return values * float("nan") if self.now else values


def agree(out: Path) -> None:
    """Runs where rank 1 alone decides (a stop, a NaN); every rank must end the same epoch."""
    train, val = data()
    stopped = gv.Trainer(build(), max_epochs=4, batch_size=8, device="cpu", seed=0, drop_last=True,
                         callbacks=[StopOnRank(1, 2)])  # fmt: skip
    stopped.fit(train, val)
    poison = PoisonOnRank(1, 2)
    diverged = gv.Trainer(build(), gv.ELBO(kl=poison.kl), max_epochs=4, batch_size=8, device="cpu", seed=0,
                          drop_last=True, callbacks=[poison])  # fmt: skip
    try:
        diverged.fit(train, val)
        error: tuple[int, str] | None = None
    except gv.DivergenceError as err:
        error = (err.epoch, err.term)
    result = {"stop": (len(stopped.history), stopped.state.stop_reason), "nan": (len(diverged.history), error)}
    torch.save(result, out / f"rank{stopped.distributed.rank}.pt")
    del stopped, diverged
    gv.training.distributed.shutdown()


def main() -> None:
    out = Path(sys.argv[1])
    torch.set_num_threads(1)
    if sys.argv[2:] == ["agree"]:
        agree(out)
        return
    if sys.argv[2:3] == ["conv"]:
        conv(out, sys.argv[3])
        return
    model = build()
    train, val = data()
    callbacks = [gv.training.ModelCheckpoint(out / "checkpoints")]
    trainer = gv.Trainer(model, max_epochs=3, batch_size=8, device="cpu", seed=0, drop_last=True, callbacks=callbacks)
    history = trainer.fit(train, val)
    if trainer.distributed.is_main:
        torch.save({"state": model.state_dict(), "history": history.records,
                    "world_size": trainer.distributed.world_size}, out / "result.pt")  # fmt: skip
    del trainer
    gv.training.distributed.shutdown()


if __name__ == "__main__":
    main()
