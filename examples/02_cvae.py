"""The notebook's section 10.6 with genvae: the conditional VAE, its manifolds for labels 4 and 8,
the scatter of its posterior means, samples with one shared z per column, and label swaps.

    python examples/02_cvae.py [--dataset mnist --data-root DIR] [--epochs 10] [--quick]
"""

from common import options, splits

import genvae as gv

args = options(__doc__.splitlines()[0], "cvae")
train, test = splits(args)

cvae = gv.presets.seed_cvae(latent_dim=2, num_classes=10, conditioner="split")  # W_z·z + W_y·y (10.6a)
history = gv.Trainer(cvae, max_epochs=args.epochs, seed=0, callbacks=[gv.training.ProgressBar()]).fit(train, test)
print(f"test: {history.last['val_total']:.2f} nats per image")

for label in (4, 8):  # plot_latent_cvae (10.6d): what the latent dimensions mean for each label (10.6e)
    gv.viz.latent_manifold(cvae, y=label, n=21).savefig(args.out / f"manifold_{label}.png")
gv.viz.latent_scatter(cvae, test).savefig(args.out / "scatter.png")  # scatterplot_latent_cvae (10.6f)
gv.viz.samples(cvae, n=10).savefig(args.out / "samples.png")  # same z per column: style kept, label changed
gv.viz.label_swap(cvae, test.images[:8], test.labels[:8]).savefig(args.out / "label_swap.png")  # 10.6i
print(f"figures in {args.out}")
