"""Better samples than the prior's, and a number that says so: a VAE's samples from N(0, I) against
a Gaussian mixture fitted to its posterior means, and a VQ-VAE's samples through a learned prior
over its codes, each scored by the Fréchet distance and precision/recall against held-out images.

    python examples/06_better_samples.py [--epochs 10] [--out DIR] [--quick]

With --quick (one epoch on 1,000 images) the figures only show that everything runs: the samplers
are told apart after real training (the Reproducibility page's sample-quality rows).
"""

import matplotlib.pyplot as plt
import torch
from common import options, splits

import genvae as gv

args = options(__doc__.split("\n\n")[0].replace("\n", " "), "better_samples")
train, test = splits(args)
g = torch.Generator().manual_seed(0)

# the judge: a small classifier trained on the training images; its features score every sampler
features = gv.sample_quality.feature_network(train, epochs=1 if args.quick else 5, seed=0)

torch.manual_seed(0)
vae = gv.presets.seed_vae(latent_dim=16)
gv.Trainer(vae, max_epochs=args.epochs, seed=0).fit(train)
torch.manual_seed(0)
vq = gv.presets.seed_vqvae(codebook_size=64, code_dim=8)
gv.Trainer(vq, max_epochs=args.epochs, seed=0).fit(train)

samplers = {
    "prior": gv.samplers.PriorSampler(vae),
    "gmm": gv.samplers.GaussianMixtureSampler(vae, components=10).fit(train),
    "code": gv.samplers.get("code")(vq).fit(train, epochs=1 if args.quick else 10),
}
print(
    f"{'sampler':8}  {'FD':>8}  {'precision':>9}  {'recall':>6}   ({len(test)} samples against {len(test)} test images)"
)
for name, sampler in samplers.items():
    generated = sampler.sample(len(test), generator=g)
    quality = gv.sample_quality.sample_quality(test, generated, features, k=3)
    print(f"{name:8}  {quality.frechet_distance:8.2f}  {quality.precision:9.3f}  {quality.recall:6.3f}")
    fig, ax = plt.subplots(figsize=(10, 1.2))
    ax.imshow(gv.viz.tile(generated[None, :10]), cmap="gray", vmin=0, vmax=1)  # one row of 10
    ax.set_axis_off()
    ax.set_title(f"{name} sampler: FD {quality.frechet_distance:.1f}, precision {quality.precision:.2f}, "
                 f"recall {quality.recall:.2f}")  # fmt: skip
    fig.savefig(args.out / f"samples_{name}.png", bbox_inches="tight")
    plt.close(fig)
print(f"figures: {args.out}/samples_{{prior,gmm,code}}.png")
