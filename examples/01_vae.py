"""The notebook's sections 10.2–10.5 with genvae: train the VAE, plot its loss curves, its latent
manifold and the scatter of the posterior means.

    python examples/01_vae.py [--dataset mnist --data-root DIR] [--epochs 10] [--quick]
"""

from common import options, splits

import genvae as gv

args = options(__doc__.splitlines()[0], "vae")
train, test = splits(args)

model = gv.presets.seed_vae(latent_dim=2)  # the notebook's VAE (10.2)
trainer = gv.Trainer(model, gv.ELBO(), max_epochs=args.epochs, batch_size=32, seed=0,
                     callbacks=[gv.training.ProgressBar()])  # fmt: skip
history = trainer.fit(train, test)  # the training loop with train and test curves (10.4)
print(f"test: {history.last['val_total']:.2f} nats per image "
      f"(recon {history.last['val_recon']:.2f} + KL {history.last['val_kl']:.2f})")  # fmt: skip

gv.viz.loss_curves(history).savefig(args.out / "loss_curves.png")
gv.viz.latent_manifold(model, n=31, scale=2.0).savefig(args.out / "manifold.png")  # plot_latent (10.5a)
gv.viz.latent_scatter(model, test, n=5000).savefig(args.out / "scatter.png")  # scatterplot_latent (10.5d)
gv.save(model, args.out / "model")
print(f"figures and model in {args.out}")
