"""The named mutants that ``tools/mutation_check.py`` puts into a copy of the repository, one at a
time: each is a small, plausible bug (a dropped term, an ignored option) that the test suite
must catch.

Each mutant replaces ``original`` (which must occur exactly once in ``file``) by ``replacement``
and runs ``tests`` (paths or globs relative to the repository root, so test files that other
work adds are picked up). When the source changes so that ``original`` is no longer there, the
mutant is reported as "does not apply": update it to the new code rather than drop it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Mutant:
    name: str
    file: str
    original: str
    replacement: str
    tests: tuple[str, ...]
    why: str


TRAINER = "src/genvae/training/trainer.py"
CALLBACKS = "src/genvae/training/callbacks.py"
BATCHES = "src/genvae/training/batches.py"
LOSSES = "src/genvae/losses.py"
GAUSSIAN = "src/genvae/gaussian.py"
EVALUATION = "src/genvae/evaluation.py"
EXPERIMENT = "src/genvae/experiment.py"

TRAINING_TESTS = ("tests/test_training*.py", "tests/test_semantics_training.py")
CALLBACK_TESTS = ("tests/test_training*.py", "tests/test_semantics_callbacks.py")
LOSS_TESTS = ("tests/test_losses*.py", "tests/test_semantics_losses.py")
SPEED_TESTS = ("tests/test_speed_options.py",)
EVALUATION_TESTS = ("tests/test_evaluation*.py",)
CLI_TESTS = ("tests/test_cli*.py", "tests/test_experiment.py")

MUTANTS: list[Mutant] = [
    # -- named in issue 16 --------------------------------------------------------------------------
    Mutant(
        "iw-nll: proposal log-variance dropped", EVALUATION,
        "log_q = log_normal(z, mean, logvar)", "log_q = log_normal(z, mean)",
        EVALUATION_TESTS, "log q(z|x) evaluated as if the posterior had unit variance",
    ),
    Mutant(
        "prior_match: spread of the means dropped", EVALUATION,
        "covariance = centred.T @ centred / mu.shape[0] + torch.diag(var.mean(0))",
        "covariance = torch.diag(var.mean(0))",
        EVALUATION_TESTS, "aggregate-posterior covariance without the covariance of the posterior means",
    ),
    Mutant(
        "in-memory batches never shuffled", BATCHES,
        "order = self._order(n) if self.shuffle else None",
        "order = None",
        TRAINING_TESTS, "every epoch sees the data in file order",
    ),
    Mutant(
        "best.ckpt rewritten every epoch", CALLBACKS,
        "if self.save_best and improved:", "if self.save_best:",
        CALLBACK_TESTS, "best.ckpt holds the last epoch, improved or not",
    ),
    Mutant(
        "free bits clamp the total KL", LOSSES,
        "kl_for_loss = kl_values.mean(0).clamp(min=self.free_bits).sum()",
        "kl_for_loss = kl_values.mean(0).sum().clamp(min=self.free_bits)",
        LOSS_TESTS, "the floor applies to the sum over latent dimensions instead of to each",
    ),
    Mutant(
        "fused ignored", TRAINER,
        "lr=lr, fused=use_fused or None)", "lr=lr, fused=None)",
        SPEED_TESTS, "Trainer(fused=True) builds a plain Adam",
    ),
    Mutant(
        "channels_last ignored (weights)", TRAINER,
        "self.model = self.model.to(memory_format=torch.channels_last)", "self.model = self.model",
        SPEED_TESTS, "Trainer(channels_last=True) leaves the convolution weights contiguous",
    ),
    Mutant(
        "channels_last ignored (images)", TRAINER,
        "x = x.contiguous(memory_format=torch.channels_last)", "x = x.contiguous()",
        SPEED_TESTS, "Trainer(channels_last=True) feeds contiguous images",
    ),
    Mutant(
        "amp ignored", TRAINER,
        'enabled=self.amp == "bf16"', "enabled=False",
        SPEED_TESTS, 'Trainer(amp="bf16") runs the forward pass in float32',
    ),
    Mutant(
        "LRScheduler step interval ignored", CALLBACKS,
        'if self.interval == "step":', 'if self.interval == "never":',
        CALLBACK_TESTS, 'LRScheduler(interval="step") never steps',
    ),
    Mutant(
        "ReduceLROnPlateau not stepped", CALLBACKS,
        'self.scheduler.step(_monitored(logs, self.monitor, "LRScheduler")[1])', "pass",
        CALLBACK_TESTS, "a plateau scheduler never sees the monitored figure",
    ),
    Mutant(
        "TerminateOnNaN check_every ignored", CALLBACKS,
        "if step % self.check_every:", "if False:",
        CALLBACK_TESTS, "TerminateOnNaN(check_every=k) checks (and syncs) every step",
    ),
    Mutant(
        # one registry-driven builder serves every model, so one mutant covers the VAE and the CVAE
        "CLI --latent-dim not passed", EXPERIMENT,
        '"latent_dim": config.latent_dim,', '"latent_dim": 2,',
        CLI_TESTS, "genvae train --latent-dim 8 trains a 2-D model",
    ),
    Mutant(
        "CLI --conditioner not passed", EXPERIMENT,
        '"conditioner": config.conditioner,', '"conditioner": None,',
        CLI_TESTS, "genvae train --conditioner concat trains a split CVAE",
    ),
    Mutant(
        "CLI --batch-size not passed", EXPERIMENT,
        "batch_size=config.batch_size,", "batch_size=32,",
        CLI_TESTS, "genvae train --batch-size 8 trains with batches of 32",
    ),
    Mutant(
        "CLI --lr not passed", EXPERIMENT,
        "lr=config.lr,", "lr=1e-3,",
        CLI_TESTS, "genvae train --lr 0.01 trains at 1e-3",
    ),
    Mutant(
        "device check removed", TRAINER,
        "if not torch.cuda.is_available():", "if False:",
        ("tests/test_semantics_training.py", "tests/test_speed_options.py", *CLI_TESTS),
        "Trainer(device='cuda') on a CPU-only build fails deep in torch with an AssertionError",
    ),
    # -- core maths and more semantics ---------------------------------------------------------------
    Mutant(
        "KL: wrong sign of the log-variance (gaussian.kl_per_dim)", GAUSSIAN,
        "return 0.5 * (mean.pow(2) + (torch.expm1(logvar) - logvar))",
        "return 0.5 * (mean.pow(2) + (torch.expm1(logvar) + logvar))",
        (*LOSS_TESTS, "tests/test_reliability.py"), "KL(q‖p) = ½(μ² + σ² − 1 + log σ²)",
    ),
    Mutant(
        "KL: mean term dropped (gaussian.kl_per_dim)", GAUSSIAN,
        "return 0.5 * (mean.pow(2) + (torch.expm1(logvar) - logvar))",
        "return 0.5 * (torch.expm1(logvar) - logvar)",
        (*LOSS_TESTS, "tests/test_models.py"), "the closed-form KL forgets μ²",
    ),
    Mutant(
        "reparameterisation uses the variance, not the std", GAUSSIAN,
        "return mean + eps * torch.exp(0.5 * logvar)", "return mean + eps * torch.exp(logvar)",
        (*LOSS_TESTS, "tests/test_models.py"), "z = μ + ε·σ² instead of μ + ε·σ",
    ),
    Mutant(
        "log_normal: normaliser dropped", GAUSSIAN,
        "return -0.5 * (centred.pow(2) * torch.exp(-logvar) + logvar + LOG_2PI).sum(-1)",
        "return -0.5 * (centred.pow(2) * torch.exp(-logvar) + logvar).sum(-1)",
        (*LOSS_TESTS, *EVALUATION_TESTS), "log N(z; μ, σ²) without −½ log 2π per dimension",
    ),
    Mutant(
        "β ignored in the loss", LOSSES,
        "loss = recon + self.kl_weight * kl_for_loss", "loss = recon + kl_for_loss",
        LOSS_TESTS, "ELBO(beta=4) trains as a plain VAE",
    ),
    Mutant(
        "drop_last ignored", BATCHES,
        "return n // b if self.drop_last else math.ceil(n / b)", "return math.ceil(n / b)",
        TRAINING_TESTS, "Trainer(drop_last=True) keeps the last, smaller batch",
    ),
    Mutant(
        "shuffling ignores the seed", TRAINER,
        "self.generator.manual_seed(self.seed)", "self.generator.manual_seed(0)",
        TRAINING_TESTS, "every seed shuffles the data in the same order",
    ),
    Mutant(
        "ReduceLROnPlateau watches the default key", CALLBACKS,
        '_monitored(logs, self.monitor, "LRScheduler")', '_monitored(logs, "auto", "LRScheduler")',
        CALLBACK_TESTS, "LRScheduler(monitor=...) is ignored",
    ),
    Mutant(
        "last.ckpt not written on interrupt", CALLBACKS,
        "trainer.save_checkpoint(self.last_path)  # mid-epoch", "pass  # mid-epoch",
        CALLBACK_TESTS, "Ctrl-C leaves the checkpoint of the last epoch end",
    ),
]  # fmt: skip
