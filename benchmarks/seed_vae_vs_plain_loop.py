"""The notebook's VAE trained by genvae and by a plain hand-written PyTorch loop, interleaved.

Same architecture, same initial weights, same data (full Fashion-MNIST: 60,000 training and
10,000 test images), batch size 32, Adam 1e-3, the same number of epochs. Reports each one's
test loss (negative ELBO, per-sample nats, one sampled z per image) and seconds per training
epoch, then the conditional VAE's test loss next to the VAE's.

    python benchmarks/seed_vae_vs_plain_loop.py [--epochs 5] [--json results.json]

Epochs alternate between the two (plain, genvae, plain, ...), so drift in the machine's speed
hits both alike.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics

import torch
from notebook_models import NotebookVAE, copy_weights, plain_epoch, plain_test
from torch.utils.data import DataLoader, TensorDataset

import genvae as gv


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="also write the figures here")
    args = parser.parse_args()

    train, test = gv.data.FashionMNIST(split="train"), gv.data.FashionMNIST(split="test")
    print(f"data: {train.name} {len(train)} / {test.name} {len(test)}; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {platform.processor() or platform.machine()}")  # fmt: skip

    torch.manual_seed(args.seed)
    model = gv.presets.seed_vae(latent_dim=2)
    plain = NotebookVAE(latent_size=2)
    copy_weights(model, plain)

    loader = DataLoader(
        TensorDataset(train.images, train.labels), batch_size=32, shuffle=True,
        generator=torch.Generator().manual_seed(args.seed),
    )  # fmt: skip
    plain_opt = torch.optim.Adam(plain.parameters(), lr=1e-3)
    trainer = gv.Trainer(model, lr=1e-3, batch_size=32, max_epochs=1, device="cpu", seed=args.seed)

    plain_times, genvae_times = [], []
    for epoch in range(1, args.epochs + 1):
        plain_times.append(plain_epoch(plain, loader, plain_opt)[0])
        trainer.max_epochs = epoch
        trainer.fit(train)
        genvae_times.append(trainer.history.last["time"])
        print(f"epoch {epoch}: plain {plain_times[-1]:.2f}s  genvae {genvae_times[-1]:.2f}s", flush=True)

    torch.manual_seed(123)
    plain_loss = plain_test(plain, test.images, test.labels)
    torch.manual_seed(123)
    genvae_test = trainer.evaluate(test)

    torch.manual_seed(args.seed)
    cvae = gv.presets.seed_cvae(latent_dim=2, num_classes=10)
    cvae_trainer = gv.Trainer(cvae, lr=1e-3, batch_size=32, max_epochs=args.epochs, device="cpu", seed=args.seed)
    cvae_trainer.fit(train)
    torch.manual_seed(123)
    cvae_test = cvae_trainer.evaluate(test)

    result = {
        "epochs": args.epochs,
        "plain_test_loss": plain_loss,
        "genvae_test_loss": genvae_test["total"],
        "loss_ratio": genvae_test["total"] / plain_loss,
        "plain_seconds_per_epoch": statistics.median(plain_times),
        "genvae_seconds_per_epoch": statistics.median(genvae_times),
        "time_ratio": statistics.median(genvae_times) / statistics.median(plain_times),
        "plain_epoch_times": plain_times,
        "genvae_epoch_times": genvae_times,
        "vae_test": genvae_test,
        "cvae_test": cvae_test,
    }
    print(f"test loss (nats/image): plain {plain_loss:.2f}, genvae {genvae_test['total']:.2f} "
          f"(ratio {result['loss_ratio']:.4f})")  # fmt: skip
    print(f"seconds per epoch (median): plain {result['plain_seconds_per_epoch']:.2f}, genvae "
          f"{result['genvae_seconds_per_epoch']:.2f} (ratio {result['time_ratio']:.3f})")  # fmt: skip
    print(f"CVAE vs VAE test loss: {cvae_test['total']:.2f} (recon {cvae_test['recon']:.2f}, KL {cvae_test['kl']:.2f}) "
          f"vs {genvae_test['total']:.2f} (recon {genvae_test['recon']:.2f}, KL {genvae_test['kl']:.2f})")  # fmt: skip
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=2)


if __name__ == "__main__":
    main()
