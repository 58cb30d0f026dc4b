"""Experiment trackers: a run's figures, settings and trained model in MLflow or Weights & Biases.

:class:`MLflowLogger` and :class:`WandbLogger` are callbacks of one shape: when ``fit`` starts they
open a run (or continue one) and log its parameters, after every epoch they log the History's new
record (``train_total``, ``val_kl``, ..., ``time``) with the epoch as the step, and when ``fit``
ends they log the trained model, saved with :func:`genvae.save`, as an artifact named ``model``
(``gv.load`` reads a downloaded copy). The run's id is part of the callback's state, so a run
resumed from a checkpoint (``Trainer.fit(..., resume_from=...)``, ``genvae train --resume``)
continues the same tracker run.

Each needs its package (``pip install 'genvae[mlflow]'`` or ``'genvae[wandb]'``); genvae imports
it only when the callback is created.

Example:
    >>> import torch, genvae as gv
    >>> tracker = gv.training.MLflowLogger("sqlite:///mlflow.db", experiment="vae")  # doctest: +SKIP
    >>> gv.Trainer(gv.presets.seed_vae(), callbacks=[tracker]).fit(torch.rand(64, 1, 28, 28))  # doctest: +SKIP
    >>> tracker.run_id  # doctest: +SKIP
    '3f2a...'
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast
from urllib.parse import urlsplit, urlunsplit

from genvae.config import get_config, save
from genvae.training.callbacks import Callback, Logs

if TYPE_CHECKING:
    from genvae.training.trainer import Trainer

__all__ = ["MLflowLogger", "TrackerError", "WandbLogger", "flat_params", "redacted_uri", "trainer_params"]

#: The longest parameter value logged (older MLflow servers refuse longer ones); longer ones are cut.
MAX_PARAM_CHARS = 500
_WANDB_MODES = ("online", "offline", "disabled")
_WandbMode = Literal["online", "offline", "disabled"]


class TrackerError(OSError):
    """A tracker could not open, continue or write its run (an unreachable server, an unknown run
    id, a deleted experiment): one line naming the tracker and the cause."""


def redacted_uri(uri: str | None) -> str | None:
    """``uri`` with any user name and password replaced by ``***`` (for files and logs).

    Example:
        >>> redacted_uri("https://me:secret@mlflow.example.org/")
        'https://***@mlflow.example.org/'
    """
    if uri is None:
        return None
    scheme, netloc, path, query, fragment = urlsplit(uri)
    if "@" not in netloc:
        return uri
    return urlunsplit((scheme, "***@" + netloc.rsplit("@", 1)[1], path, query, fragment))


def flat_params(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested settings as flat ``{"a.b": "value"}`` strings, as MLflow's parameters need them:
    strings as they are, other values as JSON, cut to :data:`MAX_PARAM_CHARS`.

    Example:
        >>> flat_params({"lr": 0.001, "objective": {"beta": 1.0, "kl": "kl"}, "sizes": [32, 64]})
        {'lr': '0.001', 'objective.beta': '1.0', 'objective.kl': 'kl', 'sizes': '[32, 64]'}
    """
    flat: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flat_params(value, f"{name}."))
            continue
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        flat[name] = text if len(text) <= MAX_PARAM_CHARS else text[: MAX_PARAM_CHARS - 1] + "…"
    return flat


def trainer_params(trainer: Trainer) -> dict[str, Any]:
    """What a tracker logs as the run's parameters when it is given none: the Trainer's settings
    (:meth:`~genvae.Trainer.settings`, ``max_epochs``, ``seed``, ``device``) under ``trainer`` and
    the model's constructor arguments (:func:`genvae.config.get_config`, without the ``args``
    levels) under ``model``."""
    settings = {"max_epochs": trainer.max_epochs, "seed": trainer.seed, "device": str(trainer.device)}
    try:
        model: Any = _without_args(get_config(trainer.model))
    except ValueError:  # a model with unregistered parts: its class is what can be said
        model = {"class": type(trainer.model).__qualname__}
    return {"trainer": {**settings, **trainer.settings()}, "model": model}


def _without_args(config: Any) -> Any:
    """A model config with each part's ``{"genvae": name, "args": {...}}`` made ``{"genvae": name, ...}``."""
    if not isinstance(config, Mapping):
        return config
    args = config.get("args")
    args = args if isinstance(args, Mapping) else {}
    rest = {k: _without_args(v) for k, v in config.items() if k != "args"}
    return {**rest, **{k: _without_args(v) for k, v in args.items()}}


class _Tracker(Callback):
    """What the trackers share: the run id as state, parameters at the start, the History's
    record each epoch, the model at the end. A subclass opens, writes to and closes its run."""

    rank_zero_only = True
    #: the tracker's name: its extra (``pip install 'genvae[mlflow]'``) and its key in config.json's ``trackers``
    extra = ""

    def __init__(self, run_id: str | None, params: Mapping[str, Any] | None, log_model: bool) -> None:
        if run_id is not None and (not isinstance(run_id, str) or not run_id.strip()):
            raise ValueError(f"run_id: expected None or a run's id, got {run_id!r}")
        self.run_id = run_id
        #: The run's parameters, logged when ``fit`` starts; None: :func:`trainer_params`.
        self.params = params
        self.log_model = log_model
        self._open = False
        self._outer: BaseException | None = None  # an exception being handled around fit, not fit's own

    def _who(self) -> str:
        return type(self).__name__

    def state_dict(self) -> dict[str, Any]:
        """The tracker run's id (once opened), so a resumed training continues that run."""
        return {"run_id": self.run_id} if self.run_id is not None else {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue the run a checkpoint names, unless this logger was given a ``run_id`` of its own."""
        saved = state.get("run_id")
        if self.run_id is None and saved is not None:
            if not isinstance(saved, str):
                raise TypeError(f"run_id: expected a string, got {type(saved).__name__}")
            self.run_id = saved

    def connect(self) -> None:
        """Check that the tracker answers (``genvae train`` calls it before it writes anything); ``fit``
        does not need it.

        Raises:
            TrackerError: the tracker cannot be reached or refused (one line).
        """
        self._guarded("connect", self._connect)

    def on_fit_start(self, trainer: Trainer) -> None:
        """Open the run (or continue ``run_id``) and log its parameters.

        Raises:
            TrackerError: the run could not be opened (the tracker's message, one line).
        """
        params = dict(self.params) if self.params is not None else trainer_params(trainer)
        resume_id, self._outer = self.run_id, sys.exc_info()[1]
        self._guarded("open the run", lambda: self._start(params, resume_id))
        self._open = True

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: Logs) -> None:
        """Log the epoch's record (every key but ``epoch``) with the epoch as the step."""
        metrics = {key: float(value) for key, value in logs.items() if key != "epoch"}
        self._guarded(f"log epoch {epoch}", lambda: self._metrics(metrics, epoch))

    def on_fit_end(self, trainer: Trainer) -> None:
        """Log the model (unless the run was interrupted, or ``log_model=False``) and close the run:
        finished, killed (Ctrl-C) or failed (an exception, such as a divergence, ends ``fit``)."""
        if not self._open:
            return
        self._open = False
        # fit calls this in a `finally`: an exception in flight (other than one fit was called within) ends it
        failing = sys.exc_info()[1] not in (None, self._outer)
        status = "KILLED" if trainer.interrupted else "FAILED" if failing else "FINISHED"
        try:
            try:
                if self.log_model and not trainer.interrupted:
                    self._model(trainer)
            finally:  # the run is closed even when its model could not be logged
                self._guarded("close the run", lambda: self._end(status))
        except TrackerError as err:
            if not failing:
                raise
            print(f"{self._who()}: {err}", file=sys.stderr, flush=True)  # keep fit's own error the one raised

    def _model(self, trainer: Trainer) -> None:
        with tempfile.TemporaryDirectory(prefix="genvae-model-") as folder:
            try:
                path = save(trainer.model, Path(folder) / "model")
            except ValueError as err:  # an unregistered part, non-finite weights: the run's figures stand
                print(f"{self._who()}: the model was not logged ({err})", file=sys.stderr, flush=True)
                return
            self._guarded("log the model", lambda: self._artifact(path))

    def _guarded(self, what: str, action: Callable[[], None]) -> None:
        """Run ``action``, a tracker's failure made a one-line :class:`TrackerError`."""
        try:
            action()
        except TrackerError:
            raise
        except Exception as err:  # the tracker's own exceptions (HTTP, store, permissions) vary
            text = " ".join(str(err).split())[:400] or type(err).__name__
            raise TrackerError(f"{self._who()}: could not {what}: {text}") from err

    # -- what a tracker implements ----------------------------------------------------------------

    def _connect(self) -> None:
        """Reach the tracker without opening a run (nothing to do for a tracker without a server)."""

    def _start(self, params: dict[str, Any], resume_id: str | None) -> None:
        """Open a run (continue ``resume_id`` if given), set ``run_id`` and log ``params``."""
        raise NotImplementedError

    def _metrics(self, metrics: dict[str, float], step: int) -> None:
        raise NotImplementedError

    def _artifact(self, folder: Path) -> None:
        raise NotImplementedError

    def _end(self, status: str) -> None:
        raise NotImplementedError


def _missing(package: str, extra: str, who: str) -> ImportError:
    return ImportError(f"{who} needs the {package} package: pip install 'genvae[{extra}]'")


class MLflowLogger(_Tracker):
    """Log a run to MLflow: parameters, the History's figures per epoch (step = epoch), the model.

    Talks to the tracking store through one ``MlflowClient`` of its own (not MLflow's global
    active run), so it leaves your own ``mlflow.start_run()`` alone. The model is logged as the
    artifact folder ``model`` (``gv.load(MlflowClient(uri).download_artifacts(run_id, "model"))``).
    MLflow keeps a parameter's first value: a resumed run logs only parameters it does not have yet.

    Args:
        tracking_uri: the tracking server (``http://host:5000``) or store (``sqlite:///mlflow.db``;
            ``file:///path`` where MLflow still allows it); None: MLflow's own default
            (``MLFLOW_TRACKING_URI``).
        experiment: the experiment's name (created if needed).
        run_id: continue this run instead of starting one (a checkpoint's run id is used otherwise).
        run_name: the new run's name (None: MLflow picks one).
        params: the parameters to log (nested mappings are flattened to ``a.b`` keys); None: the
            Trainer's settings and the model's arguments (:func:`trainer_params`).
        log_model: log the trained model when ``fit`` ends.
        tags: tags of the run.

    Attributes:
        run_id: the MLflow run's id (known once ``fit`` started).
        experiment_id: the experiment's id (likewise).
    """

    extra = "mlflow"

    def __init__(
        self,
        tracking_uri: str | None = None,
        experiment: str = "genvae",
        run_id: str | None = None,
        *,
        run_name: str | None = None,
        params: Mapping[str, Any] | None = None,
        log_model: bool = True,
        tags: Mapping[str, str] | None = None,
    ) -> None:
        try:
            from mlflow.tracking import MlflowClient
        except ImportError:
            raise _missing("mlflow", "mlflow", "MLflowLogger") from None
        if not isinstance(experiment, str) or not experiment.strip():
            raise ValueError(f"experiment: expected an experiment's name, got {experiment!r}")
        super().__init__(run_id, params, log_model)
        self.tracking_uri, self.experiment, self.run_name = tracking_uri, experiment, run_name
        self.tags = dict(tags or {})
        self.experiment_id: str | None = None
        self._client_class = MlflowClient
        self._client: Any = None

    @property
    def state_key(self) -> str:
        """``MLflowLogger{tracking_uri=..., experiment=...}`` (the URI without a password): one run per store."""
        return self._key_with(tracking_uri=redacted_uri(self.tracking_uri), experiment=self.experiment)

    def _connect(self) -> None:
        """Open the client and find (or create) the experiment: the store answers, or this raises."""
        self._client = self._client_class(tracking_uri=self.tracking_uri)
        self.experiment_id = self._experiment_id(self._client)

    def _start(self, params: dict[str, Any], resume_id: str | None) -> None:
        from mlflow.entities import Param, RunStatus

        if self._client is None:
            self._client = self._client_class(tracking_uri=self.tracking_uri)
        client, flat = self._client, flat_params(params)
        if resume_id is not None:
            run = client.get_run(resume_id)
            client.update_run(resume_id, status=RunStatus.to_string(RunStatus.RUNNING))
            flat = {k: v for k, v in flat.items() if k not in run.data.params}  # MLflow's parameters are write-once
        else:
            run = client.create_run(self.experiment_id or self._experiment_id(client), run_name=self.run_name,
                                    tags=self.tags)  # fmt: skip
        self.run_id, self.experiment_id = run.info.run_id, run.info.experiment_id
        items = [Param(k, v) for k, v in flat.items()]
        for first in range(0, len(items), 100):  # MLflow takes at most 100 parameters per request
            client.log_batch(run.info.run_id, params=items[first : first + 100])

    def _experiment_id(self, client: Any) -> str:
        found = client.get_experiment_by_name(self.experiment)
        if found is None:
            try:
                return str(client.create_experiment(self.experiment))
            except Exception:  # another process created it first
                found = client.get_experiment_by_name(self.experiment)
                if found is None:
                    raise
        if found.lifecycle_stage != "active":
            raise TrackerError(
                f"MLflowLogger: experiment {self.experiment!r} is deleted; restore it or name another experiment"
            )
        return str(found.experiment_id)

    def _metrics(self, metrics: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self._client.log_batch(self.run_id, metrics=[Metric(k, v, now, step) for k, v in metrics.items()])

    def _artifact(self, folder: Path) -> None:
        self._client.log_artifacts(self.run_id, str(folder), artifact_path="model")

    def _end(self, status: str) -> None:
        self._client.set_terminated(self.run_id, status=status)


class WandbLogger(_Tracker):
    """Log a run to Weights & Biases: the config, the History's figures per epoch (step = epoch),
    the model as an artifact of type ``model``.

    Opens a run of its own (``wandb.init(..., reinit="create_new")``), so a run you opened stays
    as it was. In ``"offline"`` mode everything is written under ``dir`` (``wandb/offline-run-*``)
    for ``wandb sync`` to upload later; ``"disabled"`` logs nothing.

    Args:
        project: the W&B project.
        mode: ``"online"``, ``"offline"`` or ``"disabled"``.
        run_id: continue this run (a checkpoint's run id is used otherwise).
        name: the run's display name.
        entity: the W&B user or team (None: your default).
        dir: where W&B writes its files (None: W&B's default, ``./wandb``).
        params: the run's config (nested mappings stay nested); None: :func:`trainer_params`.
        log_model: log the trained model when ``fit`` ends.
        init_kwargs: more arguments of ``wandb.init`` (``tags``, ``group``, ``settings``, ...).

    Attributes:
        run_id: the W&B run's id (known once ``fit`` started).
    """

    extra = "wandb"

    def __init__(
        self,
        project: str,
        mode: str = "online",
        run_id: str | None = None,
        *,
        name: str | None = None,
        entity: str | None = None,
        dir: str | None = None,
        params: Mapping[str, Any] | None = None,
        log_model: bool = True,
        init_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        try:
            import wandb
        except ImportError:
            raise _missing("wandb", "wandb", "WandbLogger") from None
        if not isinstance(project, str) or not project.strip():
            raise ValueError(f"project: expected a W&B project's name, got {project!r}")
        if mode not in _WANDB_MODES:
            raise ValueError(f"mode: expected one of {', '.join(_WANDB_MODES)}, got {mode!r}")
        super().__init__(run_id, params, log_model and mode != "disabled")  # disabled: no model to save
        self.mode = cast(_WandbMode, mode)
        self.project, self.name, self.entity, self.dir = project, name, entity, dir
        self.init_kwargs = dict(init_kwargs or {})
        self._wandb = wandb
        self._run: Any = None

    @property
    def state_key(self) -> str:
        """``WandbLogger{project=..., entity=...}``: one run per project."""
        return self._key_with(project=self.project, entity=self.entity)

    def _start(self, params: dict[str, Any], resume_id: str | None) -> None:
        if self.dir is not None:
            Path(self.dir).mkdir(parents=True, exist_ok=True)
        self._run = self._wandb.init(
            project=self.project, entity=self.entity, name=self.name, id=self.run_id, mode=self.mode,
            dir=self.dir, resume="allow" if resume_id is not None else None, reinit="create_new", **self.init_kwargs,
        )  # fmt: skip
        self._run.config.update(params, allow_val_change=True)
        self.run_id = self._run.id

    def _metrics(self, metrics: dict[str, float], step: int) -> None:
        self._run.log({**metrics, "epoch": step}, step=step)

    def _artifact(self, folder: Path) -> None:
        artifact = self._wandb.Artifact(f"model-{self.run_id}", type="model")
        artifact.add_dir(str(folder))  # copied to W&B's staging folder: the temporary folder may go
        self._run.log_artifact(artifact)

    def _end(self, status: str) -> None:
        self._run.finish(exit_code=0 if status == "FINISHED" else 1)
        self._run = None
