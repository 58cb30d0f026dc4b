"""The notebook's question 10.4c with numbers: how the latent size changes the reconstruction and
KL terms of the test loss.

    python examples/03_latent_size.py [--epochs 10] [--quick]
"""

import torch
from common import options, splits

import genvae as gv

args = options(__doc__.splitlines()[0], "latent_size")
train, test = splits(args)

sizes = (1, 2, 8) if args.quick else (1, 2, 4, 8, 16, 32)
print(f"{'latent':>6}  {'total':>8}  {'recon':>8}  {'KL':>6}   (test, nats per image)")
for size in sizes:
    torch.manual_seed(0)  # the initialisation too, not only the training (Trainer's seed), is reproducible
    model = gv.presets.seed_vae(latent_dim=size)
    trainer = gv.Trainer(model, max_epochs=args.epochs, seed=0)
    trainer.fit(train)
    figures = trainer.evaluate(test)
    print(f"{size:>6}  {figures['total']:>8.2f}  {figures['recon']:>8.2f}  {figures['kl']:>6.2f}")
