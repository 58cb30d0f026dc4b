"""genvae.experiment: a run's parts from their registries (parts a user registers through
``--import`` too), the objective's options, the model's own objective, extra callbacks, the
config a run's readers need; and the command around it: Ctrl-C while it starts, rank 0 alone speaks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import genvae as gv
from genvae.cli import main
from genvae.data import files
from genvae.experiment import ConfigError, TrainConfig, build_objective, train_run
from genvae.runs import RunDir
from genvae.training import Callback, Trainer
from tests.helpers import SAFETY_TIMEOUT, wait_for_fifo

ROOT = Path(__file__).resolve().parents[1]
SMALL = TrainConfig(dataset="synthetic-digits", train_size=96, test_size=32, epochs=1)
ARGS = ["--train-size", "96", "--test-size", "32", "--quiet", "--no-report"]

# A user's module: an objective (a class taking one of the run's options, dataset_size) and a
# dataset (a loader returning a tensor pair), each registered under its own name.
PARTS = """
import genvae as gv

@gv.losses.objectives.register("half-kl")
class HalfKL(gv.ELBO):
    def __init__(self, dataset_size=None):
        super().__init__(beta=0.5)
        self.dataset_size = dataset_size

@gv.data.datasets.register("tiny-digits")
def tiny_digits(split, *, root=None, download=False, limit=None):
    digits = gv.data.SyntheticDigits(limit or 128, seed=5 if split == "train" else 6)
    return digits.images, digits.labels
"""


@pytest.fixture(autouse=True)
def _no_local_mnist(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(files, "SYSTEM_DATA_DIR", tmp_path_factory.mktemp("system"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.delenv("GENVAE_DATA", raising=False)


def genvae(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))}
    env.update(XDG_CACHE_HOME=str(cwd / "cache"), OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "genvae", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=SAFETY_TIMEOUT, check=False)  # fmt: skip


def test_an_imported_objective_and_dataset_train_and_resume_from_the_command_line(tmp_path: Path) -> None:
    (tmp_path / "my_parts.py").write_text(PARTS)
    options = ["train", "--import", "my_parts", "--objective", "half-kl", "--dataset", "tiny-digits", *ARGS]
    done = genvae(*options, "--epochs", "1", "--out", "run", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "genvae train: wrote run"
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert (config["objective"], config["dataset"], config["imports"]) == ("half-kl", "tiny-digits", ["my_parts"])
    assert config["train_data"] == {"name": "tiny-digits", "size": 96}
    checkpoint = gv.training.read_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt")
    assert checkpoint["objective"]["config"]["beta"] == 0.5  # the registered class trained the model

    again = genvae(*options, "--epochs", "2", "--resume", "--out", "run", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert RunDir(tmp_path / "run").metrics()["epochs"] == 2
    assert json.loads((tmp_path / "run" / "config.json").read_text())["objective"] == "half-kl"

    unknown = genvae("train", "--objective", "half-kl", *ARGS, "--out", "other", cwd=tmp_path)  # not imported
    assert unknown.returncode == 2 and "argument --objective: invalid choice: 'half-kl'" in unknown.stderr


def test_the_objective_gets_the_options_it_declares() -> None:
    model = gv.presets.seed_vae()
    objective, settings = build_objective(TrainConfig(objective="beta-tcvae"), model, 1234)
    assert isinstance(objective, gv.BetaTCVAE) and objective.dataset_size == 1234
    assert settings == {"objective": "beta-tcvae", "k": None}
    objective, settings = build_objective(TrainConfig(objective="iwae"), model, 10)
    assert isinstance(objective, gv.IWAE) and settings == {"objective": "iwae", "k": 5}  # its default, recorded
    with pytest.raises(ConfigError, match=r"^--k: the objective 'beta-tcvae' takes no k, got 3$"):
        build_objective(TrainConfig(objective="beta-tcvae", k=3), model, 10)
    with pytest.raises(ConfigError, match=r"^--objective: expected one of beta-tcvae, elbo, iwae, m2, vq, got 'gan'$"):
        build_objective(TrainConfig(objective="gan"), model, 10)


def test_a_model_trains_with_its_own_objective_by_default() -> None:
    m2, vae = gv.presets.seed_m2(), gv.presets.seed_vae()
    objective, settings = build_objective(TrainConfig(model="m2"), m2, 10)
    assert isinstance(objective, gv.SemiSupervisedELBO) and settings["objective"] == "m2"
    assert build_objective(TrainConfig(model="m2", objective="m2"), m2, 10)[1]["objective"] == "m2"
    assert isinstance(build_objective(TrainConfig(), vae, 10)[0], gv.ELBO)  # a model without its own: the ELBO
    with pytest.raises(ConfigError, match=r"^--objective: the model 'm2' trains with its own bound; expected m2, "):
        build_objective(TrainConfig(model="m2", objective="elbo"), m2, 10)
    with pytest.raises(ConfigError, match=r"^--objective: 'm2' is the own bound of --model m2, got --model vae$"):
        build_objective(TrainConfig(model="vae", objective="m2"), vae, 10)


def test_config_json_names_the_objective_a_model_trained_with(tmp_path: Path) -> None:
    for model, objective in (("vae", "elbo"), ("m2", "m2")):
        config = TrainConfig(model=model, dataset="synthetic-digits", train_size=96, test_size=32, epochs=1)
        run = train_run(config, tmp_path / model, quiet=True)
        assert RunDir(run).config()["objective"] == objective


def test_extra_callbacks_join_the_run(tmp_path: Path) -> None:
    class Count(Callback):
        steps = 0

        def on_batch_end(self, trainer: Trainer, step: int, terms: Any) -> None:
            Count.steps += 1

    train_run(SMALL, tmp_path / "run", quiet=True, callbacks=[Count()])
    assert Count.steps == 3  # 96 images in batches of 32, one epoch


def test_a_config_without_a_key_its_readers_need_names_the_file_and_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = train_run(SMALL, tmp_path / "run", quiet=True)
    path = (run / "config.json").resolve()
    config = json.loads(path.read_text())
    del config["dataset"]
    path.chmod(0o644)
    path.write_text(json.dumps(config))
    assert main(["report", str(run), "--eval-size", "16"]) == 1
    assert capsys.readouterr().err == (
        f"genvae report: error: {run / 'config.json'}: expected the key 'dataset' (a string), but it is missing\n"
    )


def test_only_rank_0_prints(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    args = ["train", "--dataset", "synthetic-digits", *ARGS, "--epochs", "1"]
    assert main([*args, "--out", str(tmp_path / "zero")]) == 0
    assert capsys.readouterr().out == f"genvae train: wrote {tmp_path / 'zero'}\n"
    monkeypatch.setenv("RANK", "1")  # a second rank of a torchrun (WORLD_SIZE unset: no process group)
    assert main([*args, "--out", str(tmp_path / "one")]) == 0
    assert main([*args, "--k", "3", "--out", str(tmp_path / "one")]) == 1  # an error: rank 0 says it
    with pytest.raises(SystemExit):
        main([*args, "--epochs", "0", "--out", str(tmp_path / "one")])  # argparse's error too
    assert capsys.readouterr() == ("", "")


def test_ctrl_c_while_the_command_starts_prints_one_line(tmp_path: Path) -> None:
    """SIGINT lands while genvae's imports run: an import hook (installed by a sitecustomize) says
    when genvae's first module after its start-up guard is imported and waits there, so the
    signal arrives at that point, not after a sleep."""
    (tmp_path / "hook").mkdir()
    (tmp_path / "hook" / "sitecustomize.py").write_text(
        "import sys, time\n"
        "class Wait:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'genvae.classifiers':\n"
        f"            open({str(tmp_path / 'importing')!r}, 'wb').close()\n"
        "            while True:\n"
        "                time.sleep(0.01)\n"
        "sys.meta_path.insert(0, Wait())\n"
    )
    os.mkfifo(tmp_path / "importing")  # the event: the imports reached the hook, which opens it
    path = os.pathsep.join([str(tmp_path / "hook"), str(ROOT / "src")])
    process = subprocess.Popen([sys.executable, "-m", "genvae", "--version"], env={**os.environ, "PYTHONPATH": path},
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    wait_for_fifo(tmp_path / "importing", process.pid)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=SAFETY_TIMEOUT)
    assert (process.returncode, out, err) == (130, "", "genvae: interrupted\n")
