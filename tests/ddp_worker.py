"""Trains a small model for tests/test_distributed.py, under torchrun or as a single process.

python tests/ddp_worker.py OUT_DIR
python -m torch.distributed.run --standalone --nproc-per-node 2 tests/ddp_worker.py OUT_DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

import genvae as gv


class NoiseFree(gv.VAE):
    """z = mean: the same function whatever the sharding (the reparameterisation noise of each
    rank cannot match a single process's draws, so the comparison switches it off)."""

    @staticmethod
    def sample_latent(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        return mean


def build() -> NoiseFree:
    torch.manual_seed(0)
    enc = gv.encoders.MLPEncoder((1, 6, 6), hidden=(16,))
    dec = gv.decoders.MLPDecoder(2, (1, 6, 6), hidden=(16,))
    return NoiseFree(enc, dec, latent_dim=2)


def data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.rand(40, 1, 6, 6, generator=g), torch.rand(13, 1, 6, 6, generator=g)


def main() -> None:
    out = Path(sys.argv[1])
    torch.set_num_threads(1)
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
