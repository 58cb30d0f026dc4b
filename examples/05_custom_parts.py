"""Compose your own VAE: a user-written encoder and a user-written loss term, both registered so
that the model saves and reloads by name.

    python examples/05_custom_parts.py [--epochs 10] [--quick]
"""

import torch
from common import options, splits
from torch import nn

import genvae as gv

args = options(__doc__.splitlines()[0], "custom_parts")
train, test = splits(args)


@gv.encoders.register("residual_mlp")  # registered: gv.save records its arguments, gv.load rebuilds it
class ResidualMLP(nn.Module):
    """Any feature extractor works as an encoder; the model adds the posterior head."""

    def __init__(self, width: int = 256) -> None:
        super().__init__()
        self.out_features = width
        self.inp = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, width), nn.GELU())
        self.block = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, width), nn.GELU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x)
        return h + self.block(h)


@gv.losses.register("total_variation")
def total_variation(out: gv.VAEOutput, x: torch.Tensor) -> torch.Tensor:
    """Per-sample smoothness penalty of the reconstruction (a term of the user's own)."""
    r = out.recon
    return (r[..., 1:, :] - r[..., :-1, :]).abs().flatten(1).sum(1) + (r[..., 1:] - r[..., :-1]).abs().flatten(1).sum(1)


model = gv.VAE(
    encoder=ResidualMLP(width=256),
    decoder=gv.decoders.ConvDecoder(latent_dim=8, out_channels=1, image_size=28, channels=(64, 32)),
    latent_dim=8,
)
objective = gv.ELBO(reconstruction="bce", kl="kl", extra={"total_variation": 0.1})
history = gv.Trainer(model, objective, max_epochs=args.epochs, seed=0).fit(train, test)
last = history.last
print(f"test: {last['val_total']:.2f} nats per image; total variation {last['val_total_variation']:.2f}")

gv.save(model, args.out / "model")
again = gv.load(args.out / "model")
assert isinstance(again.encoder, ResidualMLP)
print(f"saved and reloaded from {args.out / 'model'}")
