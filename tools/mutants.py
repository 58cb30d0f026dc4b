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
DEVICES = "src/genvae/training/devices.py"
CALLBACKS = "src/genvae/training/callbacks.py"
BATCHES = "src/genvae/training/batches.py"
LOSSES = "src/genvae/losses.py"
GAUSSIAN = "src/genvae/gaussian.py"
EVALUATION = "src/genvae/evaluation.py"
CLI = "src/genvae/cli.py"
REPORT_WORDS = "src/genvae/report/formatting.py"
REPORT_QUESTIONS = "src/genvae/report/questions.py"
REPORT_EVALUATION = "src/genvae/report/evaluation.py"
EXPERIMENT = "src/genvae/experiment.py"
EXPERIMENT_PARTS = "src/genvae/experiment_parts.py"
TRACKERS = "src/genvae/training/trackers.py"

# The Trainer's unit tests (test_training_<module>.py); the distributed and kill/Ctrl-C files start
# processes and are named only by the mutants they are needed for.
TRAINER_UNIT_TESTS = (
    "tests/test_training_trainer.py",
    "tests/test_training_state.py",
    "tests/test_training_checkpoint.py",
    "tests/test_training_epoch_log.py",
)
TRAINING_TESTS = (*TRAINER_UNIT_TESTS, "tests/test_training_batches.py")
CALLBACK_TESTS = (*TRAINER_UNIT_TESTS, "tests/test_training_callbacks.py")
LOSS_TESTS = ("tests/test_losses*.py", "tests/test_gaussian.py")
SPEED_TESTS = ("tests/test_training_trainer_speed.py",)
EVALUATION_TESTS = ("tests/test_evaluation*.py",)
CLI_TESTS = ("tests/test_cli*.py", "tests/test_experiment.py", "tests/test_experiment_parts.py")
REPORT_QUESTION_TESTS = ("tests/test_report_questions.py",)  # fast: no run is trained
REPORT_EVALUATION_TESTS = ("tests/test_report_evaluation.py",)

MUTANTS: list[Mutant] = [
    # -- named in issue 16 --------------------------------------------------------------------------
    Mutant(
        "iw-nll: proposal log-variance dropped", "src/genvae/posteriors.py",  # the Gaussian posterior's log q
        "return z, log_normal(z, mean, logvar)", "return z, log_normal(z, mean)",
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
        "lr), fused=use_fused or None)", "lr), fused=None)",
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
        "CLI --latent-dim not passed", EXPERIMENT_PARTS,
        '"latent_dim": latent_dim,', '"latent_dim": 2,',
        CLI_TESTS, "genvae train --latent-dim 8 trains a 2-D model",
    ),
    Mutant(
        "CLI --posterior not passed", EXPERIMENT_PARTS,
        '"posterior": config.posterior,', '"posterior": None,',
        CLI_TESTS, "genvae train --posterior iaf trains a Gaussian posterior",
    ),
    Mutant(
        "resumed moments keep the checkpoint's layout", "src/genvae/training/resume.py",
        "    match_layouts(trainer.optimizer)\n", "",
        ("tests/test_training_trainer_speed.py",), "a channels-last run drifts after a resume (wrong moments paired)",
    ),
    Mutant(
        "resume compares tuples with lists", "src/genvae/runs.py",
        "if _compact(old) == _compact(value) or", "if old == value or",
        ("tests/test_experiment_parts.py",), "a hierarchical run's --latent-dims 6,3 cannot resume its own run",
    ),
    Mutant(
        "CLI --conditioner not passed", EXPERIMENT_PARTS,
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
        "device check removed", DEVICES,
        "if not torch.cuda.is_available():", "if False:",
        ("tests/test_training_devices.py", "tests/test_training_trainer_speed.py", *CLI_TESTS),
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
        "return -0.5 * (centred.pow(2) * torch.exp(-logvar) + logvar + LOG_2PI)",
        "return -0.5 * (centred.pow(2) * torch.exp(-logvar) + logvar)",
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
    # -- the report (issue 26 item 10: its wording had only a slow test) -------------------------
    Mutant(
        "report: fell and rose swapped", REPORT_WORDS,
        'verb = "fell" if after < before else "rose"', 'verb = "rose" if after < before else "fell"',
        REPORT_QUESTION_TESTS, "10.4c says a term rose when it fell",
    ),
    Mutant(
        "report: lower and higher swapped", REPORT_WORDS,
        "{'lower' if value < other else 'higher'}", "{'higher' if value < other else 'lower'}",
        REPORT_QUESTION_TESTS, "10.6g says the CVAE's KL is higher than the VAE's when it is lower",
    ),
    Mutant(
        "report: 10.4c compares the large latent size with the small", REPORT_QUESTIONS,
        "the test reconstruction term {change(r0, r1)}", "the test reconstruction term {change(r1, r0)}",
        REPORT_QUESTION_TESTS, "the reconstruction term's change is reported backwards",
    ),
    Mutant(
        "report: 10.6g compares the VAE's KL with the CVAE's", REPORT_QUESTIONS,
        "than(cvae.test_terms[1], vae.test_terms[1])", "than(vae.test_terms[1], cvae.test_terms[1])",
        REPORT_QUESTION_TESTS, "the KL comparison is turned around",
    ),
    Mutant(
        "report: evaluation.json loses the classifier", REPORT_EVALUATION,
        "for part in (self.bayes, self.classifier):", "for part in (self.bayes,):",
        REPORT_EVALUATION_TESTS, "a semi-supervised run's classifier figures are not written",
    ),
    Mutant(
        "best weights restored on interrupt", CALLBACKS,
        "self.best_weights is not None and not trainer.interrupted:", "self.best_weights is not None:",
        CALLBACK_TESTS, "restore_best_weights puts the best epoch's weights into an interrupted run",
    ),
    Mutant(
        "stop decided on one rank only", TRAINER,
        "decided and not self.should_stop:", "decided and False:",
        ("tests/test_training_distributed.py",),
        "under torchrun, a rank that decides to stop leaves the others waiting",
    ),
    Mutant(
        "crafted checkpoint epoch accepted", "src/genvae/training/checkpoint.py",
        "value < 0:", "value < -10**9:",
        TRAINING_TESTS, "a checkpoint with epoch -5 behind a valid checksum is resumed",
    ),
    # -- issue 26, item 10: the audit's survivors, and the size checks of item 6 ----------------------
    Mutant(
        "MIG: gap to the smallest mutual information", "src/genvae/latent_metrics.py",
        "second = float(top[1]) if top.numel() > 1 else 0.0", "second = float(top[-1]) if top.numel() > 1 else 0.0",
        ("tests/test_latent_metrics.py",), "with 2 latent dimensions top[1] is top[-1]: only 3 or more tell",
    ),
    Mutant(
        "active units: counted at the threshold", "src/genvae/latent_metrics.py",
        "ActiveUnits(int((variances > threshold).sum())", "ActiveUnits(int((variances >= threshold).sum())",
        ("tests/test_latent_metrics.py",), "a dimension whose variance equals the threshold counts as active",
    ),
    Mutant(
        "active units: marked active at the threshold", "src/genvae/latent_metrics.py",
        "return self.variances > self.threshold", "return self.variances >= self.threshold",
        ("tests/test_latent_metrics.py",), "ActiveUnits.active disagrees with ActiveUnits.count at the threshold",
    ),
    Mutant(
        "product-form transposed convolution: strides swapped", "src/genvae/_transposed_conv.py",
        "(sh, sw), (ph, pw), (oh, ow) = stride, padding, output_padding",
        "(sw, sh), (ph, pw), (oh, ow) = stride, padding, output_padding",
        ("tests/test_fast_layers.py",), "stride=(1, 2) computed as (2, 1) in evaluation",
    ),
    Mutant(
        "product-form transposed convolution: paddings swapped", "src/genvae/_transposed_conv.py",
        "(sh, sw), (ph, pw), (oh, ow) = stride, padding, output_padding",
        "(sh, sw), (pw, ph), (oh, ow) = stride, padding, output_padding",
        ("tests/test_fast_layers.py",), "padding=(0, 1) computed as (1, 0) in evaluation",
    ),
    Mutant(
        "product-form transposed convolution: output paddings swapped", "src/genvae/_transposed_conv.py",
        "(sh, sw), (ph, pw), (oh, ow) = stride, padding, output_padding",
        "(sh, sw), (ph, pw), (ow, oh) = stride, padding, output_padding",
        ("tests/test_fast_layers.py",), "output_padding=(0, 1) computed as (1, 0) in evaluation",
    ),
    Mutant(
        "FiLM: shift dropped", "src/genvae/conditioners.py",
        "return out * (1 + gamma) + beta", "return out * (1 + gamma)",
        ("tests/test_conditioners.py",), "FiLM scales by 1 + γ(c) but never adds β(c)",
    ),
    Mutant(
        "Gaussian likelihood: log-scale term dropped", "src/genvae/likelihoods.py",
        "** 2 - log_scale - 0.5 * math.log(2 * math.pi)", "** 2 - 0.5 * math.log(2 * math.pi)",
        ("tests/test_likelihoods.py",), "log N(x; μ, σ²) without −log σ: right at σ = 1 only",
    ),
    Mutant(
        "string labels of viz.label_swap reported as x", "src/genvae/viz.py",
        'labels_argument=None if y is None else "y")', "labels_argument=None)",
        ("tests/test_viz.py",), "label_swap(cvae, x, ['1', '2']) says 'x: expected labels as numbers'",
    ),
    Mutant(
        "numpy string labels reach torch", "src/genvae/data/inputs.py",
        'if value.dtype.kind not in "biufc":', "if value.dtype == object:",
        ("tests/test_viz.py",), "an array of strings gives torch's 'can't convert np.ndarray' naming no argument",
    ),
    Mutant(
        "model.sample sized after the latents are drawn", "src/genvae/models.py",
        'check_samples(self, "n", check_positive_int("n", n), n)', 'check_positive_int("n", n)',
        ("tests/test_models.py",), "model.sample(10**9) draws and decodes before the 2.9 TiB output is refused",
    ),
    Mutant(
        "latent_manifold sized after the grid is built", "src/genvae/viz.py",
        'check_samples(model, "n", f"{n} (a grid of {n}×{n})", n * n, figure=True)', "pass",
        ("tests/test_viz.py",), "latent_manifold(n=10**6) tries a 16 TB grid of latents first",
    ),
    Mutant(
        "the memory check refuses exactly the budget", "src/genvae/_memory.py",
        "if need <= budget:", "if need < budget:",
        ("tests/test_memory.py",), "a request of exactly the physical memory is refused",
    ),
    Mutant(
        "publishing offers allow_non_finite", "src/genvae/runs.py",
        "raise err.with_option(None) from None", "raise",
        ("tests/test_option_hints.py",), "genvae train says 'pass allow_non_finite=True', which it cannot take",
    ),
    Mutant(
        "a missing dataset's option cannot be renamed", "src/genvae/data/mnist.py",
        "return type(self)(self.missing, option)", "return self",
        ("tests/test_option_hints.py",), "the command line would still say 'pass download=True' for --download",
    ),
    Mutant(
        "trackers log each epoch one step early", TRACKERS,
        'lambda: self._metrics(metrics, epoch))', 'lambda: self._metrics(metrics, epoch - 1))',
        ("tests/test_training_trackers.py",), "MLflow and W&B would show epoch 1 at step 0, unlike the History",
    ),
    Mutant(
        "a checkpoint forgets the tracker's run", TRACKERS,
        'return {"run_id": self.run_id} if self.run_id is not None else {}', "return {}",
        ("tests/test_training_trackers.py",), "a resumed training would start a second MLflow or W&B run",
    ),
    # -- hardening round three: full disks, Ctrl-C at start-up -------------------------------------------
    Mutant(
        "a failed atomic write keeps its nameless error", "src/genvae/_io.py",
        "return OSError(err.errno, err.strerror or str(err), os.fspath(path))", "return err",
        ("tests/test_io.py", "tests/test_full_disk.py"), "a full disk: a bare '[Errno 28] No space left on device'",
    ),
    Mutant(
        "a callback's failed write passes through", "src/genvae/training/stops.py",
        "    except OSError as err:\n", "    except ValueError as err:\n",
        ("tests/test_training_stops.py",), "a full disk at a checkpoint: no epoch, no word of last.ckpt",
    ),
    Mutant(
        "Ctrl-C at start-up raises instead of ending", "src/genvae/_startup.py",
        "    os._exit(130)", "    raise SystemExit(130)",
        ("tests/test_startup.py",), "a Ctrl-C swallowed inside numpy's import lets the command go on, broken",
    ),
]  # fmt: skip
