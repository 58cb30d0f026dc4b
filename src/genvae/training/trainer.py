"""The :class:`Trainer`: fits any genvae model to data with an objective, with callbacks."""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from genvae._validation import check_positive_int
from genvae.inference import eval_mode
from genvae.losses import ELBOTerms, Objective, objectives
from genvae.training import distributed, options, resume
from genvae.training.averages import accumulate, averages
from genvae.training.batches import Batches, TensorBatches, as_batches, check_all, checked_once
from genvae.training.callbacks import Callback, ProgressBar
from genvae.training.checkpoint import write_checkpoint
from genvae.training.devices import fused_adam_by_default, resolve_device
from genvae.training.epoch_log import EpochLog
from genvae.training.interrupts import sigint_requests_stop
from genvae.training.state import History, TrainerState
from genvae.training.stops import callback_writes, interrupt_notice, record_checkpoint

__all__ = ["DivergenceError", "Trainer", "resolve_device"]


class DivergenceError(FloatingPointError):
    """Training produced a loss that is not finite. The trainer's model (and optimiser) hold the
    state of the end of the last finite epoch, and nothing was recorded for the diverged one.

    Attributes:
        epoch: the epoch (1-based) whose figures were not finite.
        term: the first figure that was not finite (``"train_total"``, ``"val_kl"``, ...).
        value: its value (NaN or ±inf).
    """

    def __init__(self, epoch: int, term: str, value: float) -> None:
        self.epoch, self.term, self.value = epoch, term, value
        kept = f"the end of epoch {epoch - 1}" if epoch > 1 else "the start of training"
        super().__init__(
            f"training diverged: {term} was {value} in epoch {epoch}; the model holds the weights of {kept} "
            "(try a smaller learning rate)"
        )


def _checked_objective(objective: Any, model: Any) -> Any:
    """The objective to train with: ``objective``, checked, or the model's own (the objective
    registered under its ``default_objective`` name; the ELBO for a model that names none)."""
    if objective is None:
        name = getattr(model, "default_objective", "elbo")
        return objectives.get(name if isinstance(name, str) else "elbo")()
    if isinstance(objective, type):  # gv.IWAE for gv.IWAE(k=...): a class is callable too
        raise TypeError(
            f"objective: expected an Objective instance, got the class {objective.__name__}; "
            f"construct it, e.g. gv.{objective.__name__}()"
        )
    if not callable(objective):
        raise TypeError(f"objective: expected an Objective or a function (out, x) -> ELBOTerms, got {objective!r}")
    own: tuple[str, ...] = getattr(model, "trains_with", ())  # a model that trains with its own bound only
    if own and isinstance(objective, Objective) and not any(isinstance(objective, objectives.get(n)) for n in own):
        raise TypeError(f"objective: {type(model).__name__} trains with {', '.join(own)} only, got {objective!r}")
    return objective


class Trainer:
    """Fits a model by minimising an objective over mini-batches, with callbacks.

    Args:
        model: a :class:`~genvae.VAE` or :class:`~genvae.ConditionalVAE` (labels are passed to the
            latter).
        objective: a :class:`~genvae.losses.Objective`, or any function ``(out, x) -> ELBOTerms``;
            default: the model's own, named by its ``default_objective`` in
            :data:`genvae.losses.objectives` (:class:`~genvae.ELBO` for a VAE,
            :class:`~genvae.semisupervised.SemiSupervisedELBO` for M2).
        optimizer: a ``torch.optim.Optimizer`` over the model's parameters (default: Adam with
            learning rate ``lr``).
        lr: the learning rate of the default optimiser, or one per group of parameters by
            submodule name, e.g. ``{"prior": 1e-3, "default": 5e-4}`` (see
            :mod:`genvae.training.options`).
        normalize_gradients: divide each parameter's gradient by its L2 norm before the step (the
            VampPrior reference's AdamNormGrad).
        clip_grad_norm: clip the global L2 norm of the gradients to this value (None: no clipping).
        max_epochs: epochs to train (a resumed run counts the epochs already done).
        batch_size: samples per batch for in-memory data and Datasets.
        device: ``"auto"`` (CUDA if available), ``"cpu"``, ``"cuda"``...
        callbacks: :class:`~genvae.training.Callback` instances.
        seed: seeds the global torch RNG and the shuffling when ``fit`` starts a fresh run, for
            reproducible runs; ``None`` leaves the RNGs alone. Calling ``fit`` again (with a larger
            ``max_epochs``) continues the run.
        shuffle: reshuffle the training data every epoch.
        drop_last: drop the last, smaller batch of each epoch (always done under ``torchrun``, so
            every rank steps with a full share).
        fused: use the fused Adam kernel for the default optimiser; ``None`` picks it where it
            was measured faster (see ``benchmarks/train_throughput.py``).
        channels_last: keep images and convolution weights in channels-last memory format (the
            model is converted in place); ``None`` or ``False`` keeps the model's layout (see
            :mod:`genvae.training.devices` for why it is not the default).
        compile: ``torch.compile`` the training step: ``True`` or a mode (``"default"``,
            ``"reduce-overhead"``, which uses CUDA graphs on a GPU, ``"max-autotune"``).
        amp: ``"bf16"`` to run the forward pass under bfloat16 autocast (on a GPU that has it).
        quiet: print nothing. Without it, the trainer reports on standard error unless a
            :class:`~genvae.training.ProgressBar` or :class:`~genvae.training.EpochLog` is among the
            callbacks: on a terminal with a progress bar, elsewhere (a log file, a job scheduler, CI)
            with an :class:`~genvae.training.EpochLog` (a line per epoch, a heartbeat during long
            epochs); after Ctrl-C it says where ``last.ckpt`` was written. Only rank 0 prints.

    Under ``torchrun`` the trainer joins the process group, wraps the model in DDP and splits every
    batch of ``batch_size`` (the global batch) between the ranks; see
    :mod:`genvae.training.distributed`.

    The losses in the history are per-sample averages in nats: each batch's mean is weighted by
    its size. (The course notebook divided its per-sample loss once more by the batch size when
    it reported; multiply its figures by 32 to compare.)

    Example:
        >>> import torch, genvae as gv
        >>> model = gv.presets.seed_vae()
        >>> trainer = gv.Trainer(model, max_epochs=1, batch_size=16, seed=0)
        >>> history = trainer.fit(torch.rand(64, 1, 28, 28))
        >>> sorted(history.last)
        ['epoch', 'time', 'train_kl', 'train_loss', 'train_recon', 'train_total']
    """

    def __init__(
        self,
        model: torch.nn.Module,
        objective: Any = None,
        optimizer: torch.optim.Optimizer | None = None,
        *,
        lr: float | Mapping[str, float] = 1e-3,
        max_epochs: int = 10,
        batch_size: int = 32,
        device: str | torch.device = "auto",
        callbacks: Sequence[Callback] = (),
        seed: int | None = None,
        shuffle: bool = True,
        drop_last: bool = False,
        fused: bool | None = None,
        channels_last: bool | None = None,
        compile: bool | str = False,
        amp: str | None = None,
        quiet: bool = False,
        normalize_gradients: bool = False,
        clip_grad_norm: float | None = None,
    ) -> None:
        self.max_epochs = check_positive_int("max_epochs", max_epochs)
        self.batch_size = check_positive_int("batch_size", batch_size)
        if seed is not None:
            check_positive_int("seed", seed, allow_zero=True)
        self.seed, self.shuffle = seed, shuffle
        self._setup_device(device, amp, compile)
        self.drop_last = drop_last or self.distributed.enabled
        self.model: Any = self._placed(model, channels_last)
        self.objective = _checked_objective(objective, model)
        self.normalize_gradients, self.clip_grad_norm = bool(normalize_gradients), options.check_clip(clip_grad_norm)
        self.optimizer = optimizer if optimizer is not None else self._default_optimizer(lr, fused)
        self._initial_lr = [float(group["lr"]) for group in self.optimizer.param_groups]
        self.callbacks, self._speaks = _checked_callbacks(callbacks, quiet)
        self._net: Any = None  # the module the training step calls: the model, DDP-wrapped or compiled
        self._step_fn: Any = None
        self.generator = torch.Generator()  # shuffling; seeded in fit
        self.state = TrainerState()
        self.history = History()
        self.should_stop = False
        self.interrupted = False
        self.steps_per_epoch = 0
        self._train_samples = 0
        #: Set by the first Ctrl-C (or by you): the run stops at the next step boundary, as interrupted.
        self.interrupt_requested = False
        self._epoch_start_shuffle = self.generator.get_state()
        self._partial: resume.EpochProgress = ({}, 0)

    def _setup_device(self, device: str | torch.device, amp: str | None, compile: bool | str) -> None:
        self.device = resolve_device(device)
        self.distributed = distributed.context(self.device)
        if self.distributed.enabled and self.device.type == "cuda":
            self.device = torch.device("cuda", self.distributed.local_rank)
            torch.cuda.set_device(self.device)
        if self.distributed.enabled and self.batch_size % self.distributed.world_size:
            raise ValueError(
                f"batch_size: expected a multiple of the {self.distributed.world_size} processes (it is the global "
                f"batch, split between them), got {self.batch_size}"
            )
        if amp not in (None, "bf16"):
            raise ValueError(f"amp: expected None or 'bf16', got {amp!r}")
        if compile not in (False, True, "default", "reduce-overhead", "max-autotune"):
            raise ValueError(
                f"compile: expected a bool or 'default', 'reduce-overhead', 'max-autotune', got {compile!r}"
            )
        self.amp, self.compile = amp, compile

    def _placed(self, model: torch.nn.Module, channels_last: bool | None) -> torch.nn.Module:
        """``model`` on the device, its convolutions channels-last when asked (None: where measured faster)."""
        self.channels_last = bool(channels_last)
        model = model.to(self.device)
        return model.to(memory_format=torch.channels_last) if self.channels_last else model  # type: ignore[call-overload]

    def _default_optimizer(self, lr: float | Mapping[str, float], fused: bool | None) -> torch.optim.Optimizer:
        use_fused = fused_adam_by_default(self.device) if fused is None else fused
        return torch.optim.Adam(options.param_groups(self.model, lr), fused=use_fused or None)

    # -- running ------------------------------------------------------------------------------

    def _batches(self, data: Any, argument: str, shuffle: bool) -> Batches:
        batches = as_batches(
            data,
            argument=argument,
            batch_size=self.batch_size,
            device=self.device,
            shuffle=shuffle,
            generator=self.generator,
            dtype=getattr(self.model, "dtype", None),
            drop_last=self.drop_last and argument == "train",
            rank=self.distributed.rank,
            world_size=self.distributed.world_size,
        )
        if isinstance(batches, TensorBatches):
            check_all(self.model, batches, argument)
        return batches

    def _call(self, net: Any, x: torch.Tensor, y: torch.Tensor | None, **kwargs: Any) -> Any:
        """``net(x, y)`` for a conditional model, ``net(x)`` otherwise (a user's model may take x
        only), under bf16 autocast when asked: the forward pass alone, the objective stays float32."""
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp == "bf16"):
            return net(x, y, **kwargs) if getattr(self.model, "conditional", False) else net(x, **kwargs)

    def _objective_terms(self, net: Any, x: torch.Tensor, y: torch.Tensor | None) -> ELBOTerms:
        """The objective's terms on a batch, the forward passes it needs run through ``net``."""

        def forward(x_: torch.Tensor, y_: torch.Tensor | None, **kwargs: Any) -> Any:
            return self._call(net, x_, y_, **kwargs)

        compute = getattr(self.objective, "compute", None)
        return compute(forward, x, y) if compute is not None else self.objective(forward(x, y), x)

    def _terms(self, x: torch.Tensor, y: torch.Tensor | None) -> ELBOTerms:
        """The training step's terms (the part that is DDP-wrapped and compiled as asked)."""
        return self._objective_terms(self._net, x, y)

    def _prepare(self) -> None:
        """Build the training step once: DDP wrapper, then compilation."""
        if self._step_fn is not None:
            return
        self._net = self.model
        if self.distributed.enabled:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            self._net = DistributedDataParallel(self.model, device_ids=ids)
        self._step_fn = self._terms
        if self.compile:
            mode = None if self.compile is True else self.compile
            self._step_fn = torch.compile(self._terms, mode=mode)

    def fit(self, train: Any, val: Any = None, *, resume_from: str | os.PathLike[str] | None = None) -> History:
        """Train on ``train`` (validating on ``val`` after each epoch) until ``max_epochs``
        epochs are done or a callback stops the run; returns the :class:`History`.

        ``train`` and ``val`` take anything :func:`genvae.data.as_tensors` takes: tensors or numpy
        arrays, ``(inputs, labels)`` pairs, an :class:`~genvae.data.ImageDataset`, any ``Dataset``
        or a ``DataLoader``. With ``resume_from`` (a checkpoint written by
        :class:`~genvae.training.ModelCheckpoint`) the run continues where that one stopped, with
        the same model, optimiser, objective, RNG and callback state, mid-epoch if it was
        interrupted there; a checkpoint written with other settings (batch size, seed, data size,
        learning rate, objective) is refused, naming each difference. ``max_epochs`` may grow.

        Ctrl-C (SIGINT) stops the run at the next step boundary: callbacks get ``on_interrupt``
        (:class:`~genvae.training.ModelCheckpoint` writes ``last.ckpt``), ``trainer.interrupted``
        is set and ``fit`` returns (unless ``quiet``, saying where ``last.ckpt`` was written). A
        second Ctrl-C interrupts at once.

        Raises:
            DivergenceError: an epoch's figures were not finite (the model holds the last finite state).
        """
        train_batches, val_batches = self._start(train, val, resume_from)
        self._prepare()
        # on ranks other than 0, only the callbacks that steer training (not those that write)
        self._active = [cb for cb in self.callbacks if self.distributed.is_main or not cb.rank_zero_only]
        for cb in self._active:
            cb.on_fit_start(self)
        try:
            with sigint_requests_stop(self):
                while self.state.epoch < self.max_epochs and not self.should_stop:
                    if not self._run_epoch(train_batches, val_batches):
                        break
        finally:
            for cb in self._active:
                cb.on_fit_end(self)
        if self.interrupted and self._speaks and self.distributed.is_main:
            print(interrupt_notice(self), file=sys.stderr, flush=True)
        return self.history

    def _start(
        self, train: Any, val: Any, resume_from: str | os.PathLike[str] | None
    ) -> tuple[Batches, Batches | None]:
        """Seed (a fresh run) or restore (a resume), and batch the data."""
        fresh = resume_from is None and self.state.global_step == 0  # a second fit continues the run
        if self.seed is not None and fresh:
            torch.manual_seed(self.seed)
            self.generator.manual_seed(self.seed)
        train_batches = self._batches(train, "train", self.shuffle)
        val_batches = self._batches(val, "val", False) if val is not None else None
        self.steps_per_epoch = len(train_batches)
        self._train_samples = train_batches.num_samples
        if self.steps_per_epoch == 0:
            raise ValueError(f"train: expected at least one batch, got {train_batches.num_samples} samples")
        options.prepare_from_data(self.model, self.objective, train, self.seed, fresh=fresh)
        if resume_from is not None:
            self.load_checkpoint(resume_from, check_settings=True)
        self.should_stop = False
        self.interrupted = False
        self.state.stop_reason = ""  # a resumed or continued run has not stopped (yet)
        return train_batches, val_batches

    def _run_epoch(self, train_batches: Batches, val_batches: Batches | None) -> bool:
        """One epoch (or the rest of an interrupted one); False when it stopped inside the epoch."""
        epoch = self.state.epoch + 1
        start = time.perf_counter()
        if self.state.step_in_epoch == 0:
            for cb in self._active:
                cb.on_epoch_start(self, epoch, {})
        snapshot = resume.state_copy(self.model, self.optimizer)
        train_logs = self._train_epoch(train_batches)
        if train_logs is None:  # stopped inside the epoch (a callback, or Ctrl-C)
            return False
        logs: dict[str, float] = {"epoch": epoch, **{f"train_{k}": v for k, v in train_logs.items()}}
        if val_batches is not None:
            logs.update({f"val_{k}": v for k, v in self._evaluate(val_batches).items()})
        self._check_finite(epoch, logs, snapshot)
        logs["time"] = time.perf_counter() - start
        self.state.epoch = epoch
        self.history.append(logs)
        for cb in self._active:
            with callback_writes(self, cb, f"at the end of epoch {epoch}"):  # a full disk: say what is kept
                cb.on_epoch_end(self, epoch, logs)
        self._agree_to_stop()
        return True

    def _agree_to_stop(self) -> None:
        """Under torchrun, stop every rank when any rank decided to stop after this epoch (a
        callback's decision on one rank would leave the others waiting in the next epoch's first
        step), with the reason of the first rank that decided."""
        if not self.distributed.enabled:
            return
        reasons = self.distributed.all_gather_object(self.state.stop_reason if self.should_stop else None)
        decided = [reason for reason in reasons if reason is not None]
        if decided and not self.should_stop:
            self.should_stop = True
            self.state.stop_reason = decided[0]

    def _check_finite(self, epoch: int, logs: dict[str, float], snapshot: dict[str, Any]) -> None:
        """Stop at the first epoch whose figures are not finite: restore the last finite state,
        record why, and raise :class:`DivergenceError`. Nothing is recorded for the epoch."""
        for term, value in logs.items():
            if not math.isfinite(value):
                self.model.load_state_dict(snapshot["model"])
                self.optimizer.load_state_dict(snapshot["optimizer"])
                self.state.step_in_epoch = 0
                error = DivergenceError(epoch, term, value)
                self.state.stop_reason = str(error)
                self.should_stop = True
                raise error

    def _train_epoch(self, batches: Batches) -> dict[str, float] | None:
        self.model.train()
        first = self.state.step_in_epoch  # > 0 when resuming inside an epoch
        if first == 0:
            self._epoch_start_shuffle = self.generator.get_state()
            self._partial = ({}, 0)
        sums, count = self._partial
        with checked_once(self.model, batches):
            for step, (x, y) in enumerate(batches.iterate(start_step=first), start=first):
                count += self._train_step(step, x, y, sums)
                self.state.step_in_epoch, self._partial = step + 1, (sums, count)
                if self.interrupt_requested:
                    self._interrupt(step)
                if self.should_stop:
                    return None
        self.state.step_in_epoch = 0
        return averages(sums, count, self.distributed)

    def _train_step(self, step: int, x: torch.Tensor, y: torch.Tensor | None, sums: dict[str, torch.Tensor]) -> int:
        """One optimiser step; adds the batch's terms to ``sums`` and returns its size."""
        for cb in self._active:
            cb.on_batch_start(self, step)
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        terms: ELBOTerms = self._step_fn(x, y)
        self.optimizer.zero_grad(set_to_none=True)
        terms.loss.backward()
        if self.normalize_gradients or self.clip_grad_norm is not None:
            options.adjust_gradients(self.model.parameters(), self.normalize_gradients, self.clip_grad_norm)
        self.optimizer.step()
        self.state.global_step += 1
        n = accumulate(sums, terms, x.shape[0], with_loss=True)
        for cb in self._active:
            cb.on_batch_end(self, step, terms)
        return n

    def _interrupt(self, step: int) -> None:
        self.should_stop = self.interrupted = True
        self.interrupt_requested = False
        self.state.stop_reason = (
            f"interrupted at epoch {self.state.epoch + 1}, step {step + 1} of {self.steps_per_epoch}"
        )
        for cb in self._active:
            with callback_writes(self, cb, f"on Ctrl-C ({self.state.stop_reason})"):
                cb.on_interrupt(self)

    @torch.no_grad()
    def _evaluate(self, batches: Batches) -> dict[str, float]:
        sums: dict[str, torch.Tensor] = {}
        count = 0
        with eval_mode(self.model), checked_once(self.model, batches):
            for x, y in batches:
                count += accumulate(sums, self._objective_terms(self.model, x, y), x.shape[0])
        return averages(sums, count, self.distributed)

    def evaluate(self, data: Any) -> dict[str, float]:
        """The objective's terms on ``data``: ``total`` (negative ELBO), ``recon``, ``kl`` (and any
        extra terms), per-sample averages in nats, one sampled z per input."""
        return self._evaluate(self._batches(data, "data", False))

    # -- checkpoints (the payload and its checks: genvae.training.resume) ---------------------

    def settings(self) -> dict[str, Any]:
        """What a resume must match for the result to be the run's: batch size, shuffling, the
        training data's size, the optimiser's initial learning rates, the objective's
        configuration. (Not ``max_epochs``: a resume may train longer; not the seed: a resume
        restores the random state itself.)"""
        config = getattr(self.objective, "config", None)
        return {
            **options.gradient_settings(self.normalize_gradients, self.clip_grad_norm),
            "batch_size": self.batch_size,
            "shuffle": self.shuffle,
            "drop_last": self.drop_last,
            "train_samples": self._train_samples,
            "lr": self._initial_lr,
            "objective": config() if config is not None else type(self.objective).__name__,
        }

    @property
    def train_samples(self) -> int:
        """Samples in the training data of the current ``fit`` (all ranks'; 0 before ``fit`` or when unknown)."""
        return self._train_samples

    def save_checkpoint(self, path: str | os.PathLike[str]) -> None:
        """Write everything a resume needs (model, optimiser, objective, counters, history,
        callbacks, RNG, the settings a resume must match)."""
        write_checkpoint(path, resume.trainer_payload(self, self._epoch_start_shuffle, self._partial))
        record_checkpoint(self, path)

    def load_checkpoint(self, path: str | os.PathLike[str], *, check_settings: bool = False) -> None:
        """Restore the state written by :meth:`save_checkpoint` into this trainer (``fit(...,
        resume_from=path)`` calls it with ``check_settings=True``). Every field is checked before
        any is used (a crafted file with a valid checksum is refused, not resumed).

        Raises:
            CheckpointError: the file is not a checkpoint (not a regular file, corrupted), or a
                field is not what a trainer writes (``state.epoch = -5``, a step beyond the data,
                a history that does not count the epochs): one line naming the file and the field.
            ValueError: with ``check_settings``, the checkpoint was written with other
                :meth:`settings` (each difference is named, old → new); or the checkpoint holds
                weights of another model.
        """
        payload = resume.read_trainer_checkpoint(path, self.steps_per_epoch)
        if check_settings:
            resume.check_settings(path, payload.get("settings"), self.settings())
        resume.restore_trainer(self, path, payload)
        resume.restore_rng(path, payload["rng"], self.generator)
        if self.state.step_in_epoch:
            self._epoch_start_shuffle = payload["rng"]["shuffle"]
            self._partial = (dict(payload["partial"]["sums"]), int(payload["partial"]["count"]))
        record_checkpoint(self, path)


def _checked_callbacks(callbacks: Sequence[Callback], quiet: bool) -> tuple[list[Callback], bool]:
    """The callbacks in running order (checkpointing ones last, so the state they save includes
    the others' updates), with the trainer's own report added unless ``quiet`` or one is there
    (a progress bar on a terminal, an :class:`EpochLog` elsewhere), and whether it was added;
    state keys must be unique."""
    items = list(callbacks)
    for cb in items:
        if not isinstance(cb, Callback):
            raise TypeError(f"callbacks: expected Callback instances, got {type(cb).__name__}")
    speaks = not quiet and not any(isinstance(cb, ProgressBar | EpochLog) for cb in items)
    if speaks:
        items.append(ProgressBar() if sys.stderr.isatty() else EpochLog())
    keys = [cb.state_key for cb in items]
    for key in keys:
        if keys.count(key) > 1:
            raise ValueError(
                f"callbacks: expected callbacks with distinct state keys, got two with {key!r} "
                "(give one a different setting, or override its state_key)"
            )
    return sorted(items, key=lambda cb: cb.runs_last), speaks
