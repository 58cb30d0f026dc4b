"""Smoke test of genvae as users get it: run by ``.ci/run`` with the Python of a fresh virtual
environment that has the built wheel (and its ``viz``, ``export`` and ``testing`` extras)
installed, from a folder outside the source tree, so ``import genvae`` can only find the installed package.

    python tools/smoke_test.py
"""

from __future__ import annotations

import importlib.util
import math
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

import genvae as gv
import genvae.testing


def check(condition: bool, message: str) -> None:
    if not condition:
        sys.exit(f"smoke test failed: {message}")


def main() -> None:
    package = Path(gv.__file__).resolve().parent
    check(package.parent.name == "site-packages", f"genvae was imported from {package}, not from an installed wheel")
    check((package / "py.typed").is_file(), "the wheel lacks py.typed")

    torch.manual_seed(0)
    x = torch.rand(64, 1, 28, 28)
    model = gv.presets.seed_vae()
    history = gv.Trainer(model, max_epochs=2, batch_size=16, device="cpu", seed=0).fit(x)
    figures = [v for record in history for k, v in record.items() if k.startswith("train_")]
    check(len(history) == 2 and all(math.isfinite(v) for v in figures), f"training gave {history.records}")

    with tempfile.TemporaryDirectory() as folder:
        gv.save(model, folder)
        loaded = gv.load(folder)
        check(torch.equal(loaded.reconstruct(x[:4]), model.reconstruct(x[:4])), "save/load changed the model")
        figure = gv.viz.latent_manifold(model, n=5)  # the viz extra: matplotlib is installed
        figure.savefig(Path(folder) / "manifold.png")
        check((Path(folder) / "manifold.png").stat().st_size > 0, "the manifold figure is empty")

    check_kit_and_export(model, x)
    command = Path(sys.executable).with_name("genvae")
    done = subprocess.run([str(command), "--help"], capture_output=True, text=True, check=False)
    check(done.returncode == 0 and "train" in done.stdout, f"genvae --help failed: {done.stdout}{done.stderr}")
    print(f"smoke test passed: genvae {gv.__version__} from {package}, torch {torch.__version__}")


def check_kit_and_export(model: gv.VAE, x: torch.Tensor) -> None:
    """The testing kit ships in the wheel, and a model exports (torch.export; ONNX with the extra)."""
    genvae.testing.check_model(model, x[:4])
    program = torch.export.export(model.eval(), (x[:4],))
    check(program.module()(x[:4]).mean.shape == (4, model.latent_dim), "torch.export gave a wrong output")
    if importlib.util.find_spec("onnxruntime") is None or importlib.util.find_spec("onnx") is None:
        print("note: onnx/onnxruntime are not installed in this environment; the ONNX export was not checked")
        return
    import onnxruntime

    with tempfile.TemporaryDirectory() as folder:
        path = gv.export.to_onnx(model, Path(folder) / "decoder.onnx", part="decoder")
        z = torch.randn(3, model.latent_dim)
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        (got,) = session.run(None, {"z": z.numpy()})
    gap = float((torch.from_numpy(got) - model.decode(z)).abs().max())
    check(gap <= 1e-5, f"the ONNX decoder differs from model.decode by {gap:g}")


if __name__ == "__main__":
    main()
