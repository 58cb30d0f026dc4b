"""The size check before allocations that an argument sizes (genvae._memory)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

import genvae as gv
from genvae import _memory
from genvae._memory import check_fits, check_parameters, format_bytes, physical_memory


def test_the_check_refuses_one_byte_over_the_physical_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_memory, "physical_memory", lambda device="cpu": 1000)
    check_fits("n", 100, 100, 10, "things")  # exactly the budget
    expected = r"^n: expected at most 100 things in all \(1,000 bytes, this machine's memory\), got 101,"
    with pytest.raises(ValueError, match=expected + r" which would take 1,010 bytes$"):
        check_fits("n", 101, 101, 10, "things")


def test_the_host_budget_is_the_ram_within_the_cgroup_limit(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    limit = tmp_path / "memory.max"
    limit.write_text("max\n")  # cgroup v2: no limit
    monkeypatch.setattr(_memory, "_CGROUP_LIMITS", (limit,))
    assert physical_memory() == ram
    limit.write_text(f"{2**30}\n")
    assert physical_memory("cpu") == min(ram, 2**30)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_a_gpu_budget_is_its_total_memory() -> None:  # pragma: no cover - GPU machines only
    assert physical_memory("cuda:0") == torch.cuda.get_device_properties(0).total_memory


@pytest.mark.parametrize(("size", "text"), [(0, "0 bytes"), (1023, "1,023 bytes"), (1536, "1.5 KiB"),
                                            (3.136e12, "2.9 TiB"), (2**50, "1,024.0 TiB")])  # fmt: skip
def test_sizes_are_written_in_binary_units(size: float, text: str) -> None:
    assert format_bytes(size) == text


# -- the parameters a constructor's sizes imply (check_parameters) --------------------------------

_BUDGET = 8 * 2**30

# each: a build whose sizes cannot fit in 8 GiB, and the argument of that call the error names
_TOO_LARGE = [
    (lambda: gv.VAE(latent_dim=10**9), "latent_dim", "1000000000"),
    (lambda: gv.encoders.MLPEncoder(hidden=(10**12,)), "hidden", r"\(1000000000000,\)"),
    (lambda: gv.encoders.MLPEncoder(input_shape=(10**6, 10**6)), "input_shape", r"\(1000000, 1000000\)"),
    (lambda: gv.encoders.ConvEncoder(image_size=10**6), "image_size", "1000000"),
    (lambda: gv.decoders.MLPDecoder(output_shape=10**12), "output_shape", "1000000000000"),
    (lambda: gv.decoders.ConvDecoder(channels=(10**6, 10**6)), "channels", r"\(1000000, 1000000\)"),
    (lambda: gv.ConditionalVAE(num_classes=10**9), "num_classes", "1000000000"),
    (lambda: gv.ConditionalVAE(num_classes=None, condition_dim=10**9), "condition_dim", "1000000000"),
    (lambda: gv.presets.seed_cvae(num_classes=10**9), "num_classes", "1000000000"),
    (lambda: gv.HierarchicalVAE(latent_dims=(10**9, 3)), "latent_dims", r"\(1000000000, 3\)"),
    (lambda: gv.HierarchicalVAE("mlp", "mlp", hidden=10**8), "hidden", "100000000"),
    (lambda: gv.VAE(posterior=gv.posteriors.IAFPosterior(steps=10**9)), "steps", "1000000000"),
    (lambda: gv.VAE(posterior=gv.posteriors.IAFPosterior(context_dim=10**9)), "context_dim", "1000000000"),
    (lambda: gv.VAE(prior=gv.flows.FlowPrior(steps=10**9)), "steps", "1000000000"),
    (lambda: gv.VAE(prior=gv.priors.MixturePrior(components=10**10)), "components", "10000000000"),
    (lambda: gv.VAE(prior=gv.priors.VampPrior(components=10**9)), "components", "1000000000"),
    (lambda: gv.ConditionalVAE(prior=gv.priors.ConditionalPrior(hidden=(10**10,))), "hidden", r"\(10000000000,\)"),
    (lambda: gv.VQVAE(grid=(10**5, 10**5)), "grid", r"\(100000, 100000\)"),
    (lambda: gv.classifiers.ConvClassifier(num_classes=10**9), "num_classes", "1000000000"),
    (lambda: gv.classifiers.ConvClassifier(input_shape=(1, 10**6, 10**6)), "input_shape", r"\(1, 1000000, 1000000\)"),
    (lambda: gv.semisupervised.SemiSupervisedVAE(num_classes=10**9), "num_classes", "1000000000"),
    (lambda: gv.flows.MADE(10, hidden=(10**6, 10**6)), "hidden", r"\(1000000, 1000000\)"),
]


@pytest.mark.parametrize(("build", "name", "given"), _TOO_LARGE, ids=[name for _, name, _ in _TOO_LARGE])
def test_a_build_whose_parameters_cannot_fit_is_one_line_naming_the_argument(
    monkeypatch: pytest.MonkeyPatch, build: Callable[[], object], name: str, given: str
) -> None:
    # before the check: an allocator error of torch, or (a flow's steps) hours of building modules
    monkeypatch.setattr(_memory, "physical_memory", lambda device="cpu": _BUDGET)
    expected = (
        rf"^{name}: expected sizes whose parameters fit in this machine's memory \(8.0 GiB\), got {given}, "
        r"which needs [\d,.]+ [GT]iB of \w+ parameters \([\d,]+ float32\)$"
    )
    with pytest.raises(ValueError, match=expected):
        build()


# each: a build, and whether its check counts its parameters exactly (else a lower bound)
_BUILDABLE = [
    (lambda: gv.encoders.MLPEncoder((1, 28, 28), hidden=(64, 32)), True),
    (lambda: gv.encoders.ConvEncoder(channels=(8, 16), hidden=(32,)), True),
    (lambda: gv.decoders.MLPDecoder(4, (1, 28, 28), hidden=(32, 64)), True),
    (lambda: gv.decoders.ConvDecoder(4, channels=(16, 8), hidden=(32,)), True),
    (lambda: gv.flows.MADE(5, hidden=(16, 16), context_features=3), True),
    (lambda: gv.flows.InverseAutoregressiveFlow(5, steps=3, hidden=(16,), context_features=3), True),
    (lambda: gv.presets.seed_vae(posterior="iaf", prior="mog"), False),
    (lambda: gv.presets.seed_cvae(conditioner="film", prior="flow"), False),
    (lambda: gv.presets.seed_cvae(conditioner="concat", prior=gv.priors.ConditionalPrior(hidden=(16,))), False),
    (lambda: gv.ConditionalVAE("mlp", "mlp", prior="vamp", posterior=gv.posteriors.IAFPosterior(context_dim=4)), False),
    (lambda: gv.HierarchicalVAE("mlp", "mlp", latent_dims=(8, 4, 2), num_classes=10, hidden=16), False),
    (lambda: gv.VQVAE(num_classes=10), False),
    (lambda: gv.semisupervised.seed_m2(), False),
]


@pytest.mark.parametrize(
    ("build", "exact"), _BUILDABLE, ids=[f"{i}-{'exact' if e else 'bound'}" for i, (_, e) in enumerate(_BUILDABLE)]
)
def test_a_build_that_fits_the_memory_exactly_is_not_refused(
    monkeypatch: pytest.MonkeyPatch, build: Callable[[], torch.nn.Module], exact: bool
) -> None:
    # every check counts at most what its part allocates: nothing that could be built is refused
    size = sum(p.numel() for p in build().parameters()) * 4
    monkeypatch.setattr(_memory, "_SMALL", 0)  # compare every count, however small
    monkeypatch.setattr(_memory, "physical_memory", lambda device="cpu": size)
    build()
    if exact:  # and the one-part counts are exact: a byte less is refused
        monkeypatch.setattr(_memory, "physical_memory", lambda device="cpu": size - 1)
        with pytest.raises(ValueError, match="expected sizes whose parameters fit"):
            build()


def test_a_build_on_the_meta_device_is_not_checked() -> None:
    # meta tensors take no memory: gv.load builds its skeleton there (and bounds it itself)
    with torch.device("meta"):
        assert gv.encoders.MLPEncoder(hidden=(10**12,)).out_features == 10**12


def test_a_callers_names_compose_the_outermost_winning(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_memory, "physical_memory", lambda device="cpu": _BUDGET)
    with (
        _memory.arguments_named(condition_dim=("num_classes", 10**9)),
        _memory.arguments_named(context_features=("condition_dim", 10**9)),  # a part within the model
        pytest.raises(ValueError, match=r"^num_classes: .* got 1000000000, "),
    ):
        check_parameters("Flow", 10**12, context_features=(10**9, 10**9))
    with pytest.raises(ValueError, match=r"^context_features: "):  # outside the blocks: the part's own name
        check_parameters("Flow", 10**12, context_features=(10**9, 10**9))
