"""The notebook's questions 10.5b and 10.6h with numbers: classify with a linear probe on the
latent means of a VAE and of a CVAE, and with the CVAE itself by Bayes' rule.

    python examples/04_classification.py [--epochs 10] [--quick]
"""

from common import options, splits

import genvae as gv

args = options(__doc__.splitlines()[0], "classification")
train, test = splits(args)
k, n = (5, 100) if args.quick else (100, 1000)

vae, cvae = gv.presets.seed_vae(), gv.presets.seed_cvae()
for model in (vae, cvae):
    gv.Trainer(model, max_epochs=args.epochs, seed=0).fit(train)

chance = 1 / train.num_classes
print(f"linear probe on VAE latent means:  {gv.evaluation.latent_probe(vae, train, test):.3f} (chance {chance:.2f})")
cvae_probe = gv.evaluation.latent_probe(cvae, train, test)
print(f"linear probe on CVAE latent means (each encoded with its label): {cvae_probe:.3f}")
result = gv.evaluation.classify(cvae, test.images[:n], k=k)
print(f"CVAE Bayes-rule accuracy (k={k}, {n} images): {result.accuracy(test.labels[:n]):.3f}")
