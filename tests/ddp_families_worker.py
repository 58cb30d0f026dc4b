"""Trains an IWAE with a VampPrior for tests/test_families.py, under torchrun or as one process.

python tests/ddp_families_worker.py OUT_DIR
python -m torch.distributed.run --standalone --nproc-per-node 2 tests/ddp_families_worker.py OUT_DIR
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch

import genvae as gv


class NoiseFree(gv.VAE):
    """z = mean for every sample: the same function whatever the sharding (each rank's noise
    cannot match a single process's draws, so the comparison switches it off)."""

    def sample_posterior(self, params: Any, samples: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        z = params.mean if samples is None else params.mean.expand(samples, *params.mean.shape)
        return z, gv.gaussian.log_normal(z, params.mean, params.logvar)


def main() -> None:
    out = Path(sys.argv[1])
    torch.set_num_threads(1)
    torch.manual_seed(0)
    enc = gv.encoders.MLPEncoder((1, 6, 6), hidden=(16,))
    dec = gv.decoders.MLPDecoder(2, (1, 6, 6), hidden=(16,))
    model = NoiseFree(enc, dec, latent_dim=2, prior=gv.priors.VampPrior(components=5))
    x = torch.rand(32, 1, 6, 6, generator=torch.Generator().manual_seed(1))
    trainer = gv.Trainer(model, gv.IWAE(k=3), max_epochs=2, batch_size=8, device="cpu", seed=0, drop_last=True)
    history = trainer.fit(x)
    if trainer.distributed.is_main:
        torch.save({"state": model.state_dict(), "history": history.records,
                    "world_size": trainer.distributed.world_size}, out / "result.pt")  # fmt: skip
    del trainer
    gv.training.distributed.shutdown()


if __name__ == "__main__":
    main()
