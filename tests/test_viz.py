"""Figures: each test checks what the figure shows, not only that it exists."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

import genvae as gv
from genvae import viz

matplotlib = pytest.importorskip("matplotlib")


@pytest.fixture(scope="module")
def models() -> dict[str, gv.VAE]:
    torch.manual_seed(0)
    return {"vae": gv.presets.seed_vae().eval(), "cvae": gv.presets.seed_cvae().eval()}


def shown(fig: object) -> np.ndarray:
    return np.asarray(fig.axes[0].images[0].get_array())  # type: ignore[attr-defined]


@pytest.mark.parametrize("grid", ["linear", "quantile"])
def test_manifold_pixels_are_the_decoder_output_on_the_grid(models: dict[str, gv.VAE], grid: str) -> None:
    model, n = models["vae"], 5
    fig = viz.latent_manifold(model, n=n, scale=1.5, grid=grid)
    image = shown(fig)
    _, grid_x, grid_y = viz.manifold_grid(model, n=n, scale=1.5, grid=grid)
    assert image.shape == (28 * n, 28 * n)
    for i in (0, 2, 4):
        for j in (0, 3):
            expected = model.decode(torch.tensor([grid_x[j], grid_y[i]], dtype=torch.float32))[0, 0].detach().numpy()
            np.testing.assert_allclose(image[i * 28 : (i + 1) * 28, j * 28 : (j + 1) * 28], expected, atol=1e-6)
    assert grid_y[0] > grid_y[-1]  # top row: the largest z[1]


def test_quantile_grid_is_equally_spaced_in_probability() -> None:
    _, grid_x, _ = viz.manifold_grid(gv.presets.seed_vae(), n=7, scale=2.0, grid="quantile")
    probs = torch.distributions.Normal(0.0, 1.0).cdf(torch.from_numpy(grid_x)).numpy()
    np.testing.assert_allclose(np.diff(probs), np.diff(probs)[0], rtol=1e-6)
    np.testing.assert_allclose([grid_x[0], grid_x[-1]], [-2.0, 2.0], atol=1e-6)


def test_cvae_manifold_uses_the_label(models: dict[str, gv.VAE]) -> None:
    four, eight = (
        shown(viz.latent_manifold(models["cvae"], y=4, n=3)),
        shown(viz.latent_manifold(models["cvae"], y=8, n=3)),
    )
    expected = models["cvae"].decode(torch.tensor([-2.0, 2.0]), 4)[0, 0].detach().numpy()
    np.testing.assert_allclose(four[:28, :28], expected, atol=1e-6)
    assert not np.allclose(four, eight)


def test_manifold_of_a_larger_latent_space_fixes_the_other_dimensions() -> None:
    model = gv.VAE("mlp", "mlp", latent_dim=4).eval()
    fixed = torch.tensor([0.0, 0.7, 0.0, -0.3])
    image, grid_x, grid_y = viz.manifold_grid(model, n=3, dims=(0, 2), fixed=fixed)
    z = fixed.clone()
    z[0], z[2] = float(grid_x[1]), float(grid_y[2])
    np.testing.assert_allclose(image[56:84, 28:56], model.decode(z)[0, 0].detach().numpy(), atol=1e-6)
    with pytest.raises(ValueError, match="dims: expected two different latent dimensions in \\[0, 3\\]"):
        viz.manifold_grid(model, dims=(1, 1))


def test_scatter_points_are_the_posterior_means_coloured_by_label(models: dict[str, gv.VAE]) -> None:
    import matplotlib

    data = gv.data.SyntheticDigits(120, seed=0)
    tab10 = matplotlib.colormaps["tab10"]
    for name, model in models.items():
        fig = viz.latent_scatter(model, data, n=100)
        means, _ = model.encode(data.images[:100], data.labels[:100] if name == "cvae" else None)
        labels = data.labels[:100]
        groups = fig.axes[0].collections
        assert [int(t.get_text()) for t in fig.axes[0].get_legend().get_texts()] == sorted(set(labels.tolist()))
        for dots, text in zip(groups, fig.axes[0].get_legend().get_texts(), strict=True):
            label = int(text.get_text())
            np.testing.assert_allclose(dots.get_offsets(), means[labels == label].detach().numpy(), atol=1e-5)
            np.testing.assert_allclose(dots.get_facecolor()[0][:3], tab10(label)[:3])
        assert sum(len(d.get_offsets()) for d in groups) == 100


def test_scatter_projects_a_larger_latent_space_on_principal_components() -> None:
    model = gv.VAE("mlp", "mlp", latent_dim=5).eval()
    data = gv.data.SyntheticDigits(60, seed=0)
    points = np.concatenate([c.get_offsets() for c in viz.latent_scatter(model, data).axes[0].collections])
    means, _ = model.encode(data.images)
    centred = means.double() - means.double().mean(0)
    assert points.shape == (60, 2)
    np.testing.assert_allclose(
        np.var(points, axis=0).sum(), torch.linalg.svdvals(centred)[:2].pow(2).sum().item() / 60, rtol=1e-5
    )


def test_reconstructions_show_inputs_over_their_reconstructions(models: dict[str, gv.VAE]) -> None:
    data = gv.data.SyntheticDigits(6, seed=0)
    image = shown(viz.reconstructions(models["vae"], data, n=6))
    np.testing.assert_allclose(image[:28, 28:56], data.images[1, 0].numpy(), atol=1e-6)
    np.testing.assert_allclose(
        image[28:, :28], models["vae"].reconstruct(data.images[:1])[0, 0].detach().numpy(), atol=1e-6
    )


def test_cvae_samples_share_z_down_a_column(models: dict[str, gv.VAE]) -> None:
    cvae = models["cvae"]
    image = shown(viz.samples(cvae, n=4, classes=[1, 7], seed=5))
    z = torch.randn(4, 2, generator=torch.Generator().manual_seed(5))
    np.testing.assert_allclose(image[28:56, 56:84], cvae.decode(z[2:3], 7)[0, 0].detach().numpy(), atol=1e-6)
    np.testing.assert_allclose(image[0:28, 56:84], cvae.decode(z[2:3], 1)[0, 0].detach().numpy(), atol=1e-6)


def test_samples_under_a_conditional_prior_draw_each_row_from_its_own_prior() -> None:
    """p(z | y) differs per label: each row passes the same noise through its label's prior."""
    torch.manual_seed(0)
    cvae = gv.presets.seed_cvae(prior="conditional").eval()
    with torch.no_grad():  # make the labels' priors far apart, so a shared z would be caught
        for p in cvae.prior.parameters():
            p.normal_(0, 2.0)
    image = shown(viz.samples(cvae, n=3, classes=[1, 7], seed=5))
    for row, label in enumerate([1, 7]):
        c = cvae.condition(torch.full((3,), label), 3)
        z = cvae.sample_prior(3, c, generator=torch.Generator().manual_seed(5))
        expected = cvae.decode(z[2:3], label)[0, 0].numpy()
        np.testing.assert_allclose(image[28 * row : 28 * (row + 1), 56:84], expected, atol=1e-6)


@pytest.mark.parametrize("prior", ["normal", "mog", "vamp", "conditional"])
def test_samples_of_an_m2_model_under_every_prior(prior: str) -> None:
    image = shown(viz.samples(gv.presets.seed_m2(prior=prior), n=2))
    assert image.shape == (10 * 28, 2 * 28)


def test_label_swap_figure_starts_with_the_inputs(models: dict[str, gv.VAE]) -> None:
    data = gv.data.SyntheticDigits(3, seed=0)
    image = shown(viz.label_swap(models["cvae"], data.images, data.labels, classes=[0, 5]))
    assert image.shape == (3 * 28, 3 * 28)
    np.testing.assert_allclose(image[28:56, :28], data.images[1, 0].numpy(), atol=1e-6)
    swapped = gv.evaluation.label_swap(models["cvae"], data.images, data.labels, 5)
    np.testing.assert_allclose(image[56:84, 56:84], swapped[2, 0].numpy(), atol=1e-6)


def test_traversal_moves_one_dimension_per_row(models: dict[str, gv.VAE]) -> None:
    image = shown(viz.traversal(models["vae"], dims=[1], n=3, span=2.0))
    np.testing.assert_allclose(
        image[:, 56:84], models["vae"].decode(torch.tensor([0.0, 2.0]))[0, 0].detach().numpy(), atol=1e-6
    )


def test_loss_curves_plot_the_history() -> None:
    history = gv.History([{"epoch": 1, "train_total": 5.0, "train_recon": 4.0, "train_kl": 1.0, "val_total": 6.0,
                           "val_recon": 5.0, "val_kl": 1.0}, {"epoch": 2, "train_total": 3.0, "train_recon": 2.5,
                           "train_kl": 0.5, "val_total": 4.0, "val_recon": 3.0, "val_kl": 1.0}])  # fmt: skip
    fig = viz.loss_curves(history)
    assert len(fig.axes) == 3
    lines = {line.get_label(): list(line.get_ydata()) for line in fig.axes[1].lines}
    assert lines == {"train recon": [4.0, 2.5], "val recon": [5.0, 3.0]}


def test_an_axes_can_be_given(models: dict[str, gv.VAE]) -> None:
    from matplotlib.figure import Figure

    fig = Figure()
    axes = fig.subplots(1, 2)
    assert viz.latent_manifold(models["vae"], n=3, ax=axes[1]) is fig
    assert len(axes[1].images) == 1 and len(axes[0].images) == 0


def test_viz_never_imports_pyplot() -> None:
    code = (
        "import sys, genvae as gv; m = gv.presets.seed_vae(); gv.viz.latent_manifold(m, n=3); "
        "gv.viz.samples(m, n=2); assert 'matplotlib.pyplot' not in sys.modules, 'pyplot imported'; "
        "import genvae; print('ok')"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.stdout.strip() == "ok", done.stderr


def test_importing_genvae_does_not_import_matplotlib() -> None:
    done = subprocess.run([sys.executable, "-c", "import sys, genvae; print('matplotlib' in sys.modules)"],
                          capture_output=True, text=True, check=False)  # fmt: skip
    assert done.stdout.strip() == "False", done.stderr


def test_a_200_by_200_manifold_adds_under_300_mb() -> None:
    """40,000 decoded images, only a chunk of them in memory at once beside the tiled image (120 MiB)
    and matplotlib's masked copy of it (150 MiB); decoding the grid in one batch added 3.8 GiB."""
    from tests.helpers import added_mb

    setup = "torch.manual_seed(0)\nmodel = gv.presets.seed_vae()"
    grown = added_mb(setup, "gv.viz.latent_manifold(model, n=3)", "gv.viz.latent_manifold(model, n=200)")
    assert grown < 300


def test_loss_curves_of_one_epoch_tick_that_epoch_only() -> None:
    history = gv.History()
    history.append({"epoch": 1, "train_total": 3.0, "train_recon": 2.0, "train_kl": 1.0})
    fig = viz.loss_curves(history)
    assert all(list(ax.get_xticks()) == [1] for ax in fig.axes)


# -- sizes are checked before the figure is allocated (issue 26, item 6) -------------------------------


@pytest.mark.parametrize(
    ("draw", "argument", "needed"),
    [
        (lambda m: viz.latent_manifold(m["vae"], n=10**6), "n", "2,859.5 TiB"),
        (lambda m: viz.manifold_grid(m["vae"], n=10**6), "n", "2,859.5 TiB"),
        (lambda m: viz.samples(m["vae"], n=10**7, rows=10**3), "n, rows", "28.6 TiB"),
        (lambda m: viz.samples(m["cvae"], n=10**8), "n", "2.9 TiB"),
        (lambda m: viz.traversal(m["vae"], n=10**8), "n", "585.6 GiB"),
    ],
)
def test_a_figure_too_large_for_the_memory_is_refused_before_it_is_allocated(
    models: dict[str, gv.VAE], monkeypatch: pytest.MonkeyPatch, draw: object, argument: str, needed: str
) -> None:
    monkeypatch.setattr("genvae._memory.physical_memory", lambda device="cpu": 2**30)  # the same on every machine
    with pytest.raises(ValueError, match=rf"^{argument}: expected at most 341,520 images of 1×28×28 float32 .*"
                       rf"\(1\.0 GiB, this machine's memory\), got .*, which would take {needed}$") as err:  # fmt: skip
        draw(models)  # type: ignore[operator]
    assert "\n" not in str(err.value)


def test_a_figure_that_fits_the_memory_is_drawn(models: dict[str, gv.VAE], monkeypatch: pytest.MonkeyPatch) -> None:
    # 3×3 images of 1×28×28 float32 pixels and 2 float32 latents: 9 · (3136 + 8) bytes exactly
    monkeypatch.setattr("genvae._memory.physical_memory", lambda device="cpu": 9 * 3144)
    assert shown(viz.latent_manifold(models["vae"], n=3)).shape == (84, 84)
    assert shown(viz.samples(models["vae"], n=3, rows=3)).shape == (84, 84)
    with pytest.raises(ValueError, match=r"^n: expected at most 9 images .* got 10 for each of 1 rows"):
        viz.traversal(models["vae"], dims=[0], n=10)


# -- string labels are reported under the argument that holds them (issue 26, item 5) ----------------


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (["1", "2", "3"], r"^y: expected labels as numbers, got a list of other values$"),
        (np.array(["1", "2", "3"]), r"^y: expected a numeric array, got a numpy array of strings$"),
        (np.array([b"1", b"2", b"3"]), r"^y: expected a numeric array, got a numpy array of byte strings$"),
    ],
)
def test_label_swap_names_y_for_string_labels(models: dict[str, gv.VAE], labels: object, message: str) -> None:
    with pytest.raises(TypeError, match=message):
        viz.label_swap(models["cvae"], torch.rand(3, 1, 28, 28), labels)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^y: expected one label per input \(3\), got labels of shape \(2,\)$"):
        viz.label_swap(models["cvae"], torch.rand(3, 1, 28, 28), torch.arange(2))


def test_labels_inside_the_data_are_named_as_the_datas_labels(models: dict[str, gv.VAE]) -> None:
    strings = (torch.rand(3, 1, 28, 28), np.array(["1", "2", "3"]))
    with pytest.raises(TypeError, match=r"^x labels: expected a numeric array, got a numpy array of strings$"):
        viz.label_swap(models["cvae"], strings)
    with pytest.raises(TypeError, match=r"^data labels: expected a numeric array, got a numpy array of strings$"):
        viz.latent_scatter(models["cvae"], strings)
