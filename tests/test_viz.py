"""Tests of flowcourse.viz: each figure shows what it claims to show."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib.collections import LineCollection, PathCollection
from torch import Tensor, nn

from flowcourse.core import Compose, Flow, StandardNormal, Transform
from flowcourse.viz import (
    density_on_grid,
    grid_lines,
    plot_density_and_samples,
    plot_image_grid,
    plot_layers,
    plot_made_connectivity,
    plot_samples_at_temperatures,
)
from tests.helpers import randomize_parameters


class ElementwiseAffine(Transform):
    """z = x * exp(log_scale) + shift, elementwise; a layer with parameters for the plots."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.log_scale = nn.Parameter(torch.zeros(features))
        self.shift = nn.Parameter(torch.zeros(features))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        z = x * self.log_scale.exp() + self.shift
        return z, self.log_scale.sum().expand(x.shape[0])

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        x = (z - self.shift) * (-self.log_scale).exp()
        return x, -self.log_scale.sum().expand(z.shape[0])


class Shear(Transform):
    """z1 = x1 + a * sin(x2), z2 = x2: volume preserving and non-linear."""

    def __init__(self) -> None:
        super().__init__()
        self.amount = nn.Parameter(torch.tensor(0.0))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        z = torch.stack([x[:, 0] + self.amount * torch.sin(x[:, 1]), x[:, 1]], dim=1)
        return z, x.new_zeros(x.shape[0])

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        x = torch.stack([z[:, 0] - self.amount * torch.sin(z[:, 1]), z[:, 1]], dim=1)
        return x, z.new_zeros(z.shape[0])


def make_flow(num_layers: int = 3, seed: int = 0) -> Flow:
    layers = [ElementwiseAffine(2) if k % 2 == 0 else Shear() for k in range(num_layers)]
    flow = Flow(Compose(*layers), StandardNormal(2)).double()
    return randomize_parameters(flow, seed=seed)


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def all_labelled(figure) -> bool:
    return all(axes.get_title() and axes.get_xlabel() for axes in figure.axes)


# ----------------------------------------------------------------------------- densities


@settings(max_examples=10, deadline=None)
@given(
    seed=st.integers(0, 1000),
    resolution=st.integers(2, 40),
    low=st.floats(-5.0, -0.5),
    width=st.floats(0.5, 8.0),
)
def test_heatmap_values_are_exp_log_prob_on_the_grid(seed, resolution, low, width):
    flow = make_flow(seed=seed)
    bounds = (low, low + width)
    figure = plot_density_and_samples(flow, bounds=bounds, resolution=resolution, num_samples=0)
    image = figure.axes[0].images[0]
    shown = np.asarray(image.get_array())
    step = width / resolution
    centres = torch.tensor([low + step * (k + 0.5) for k in range(resolution)], dtype=torch.float64)
    # Row i is x2 = centres[i], column j is x1 = centres[j] (origin at the lower left).
    points = torch.stack([centres.repeat(resolution), centres.repeat_interleave(resolution)], dim=1)
    expected = flow.log_prob(points).exp().detach().reshape(resolution, resolution).numpy()
    assert shown.shape == (resolution, resolution)
    np.testing.assert_allclose(shown, expected, rtol=1e-12, atol=1e-300)
    assert image.origin == "lower"
    np.testing.assert_allclose(image.get_extent(), [low, low + width, low, low + width])


def test_density_on_grid_integrates_to_one_and_keeps_float64():
    flow = make_flow(seed=3)
    axis, density = density_on_grid(flow, bounds=(-12, 12), resolution=300)
    assert density.dtype == torch.float64 and axis.dtype == torch.float64
    step = float(axis[1] - axis[0])
    assert abs(float(density.sum()) * step**2 - 1.0) < 1e-3


def test_density_accepts_a_plain_log_prob_function():
    def log_prob(x: Tensor) -> Tensor:
        return -0.5 * (x**2).sum(dim=1) - math.log(2 * math.pi)

    figure = plot_density_and_samples(log_prob, num_samples=0, resolution=20)
    assert len(figure.axes) == 2  # the heatmap and its colour bar
    assert figure.axes[0].get_title() == "density p(x)"
    assert figure.axes[0].get_xlabel() == "$x_1$" and figure.axes[1].get_ylabel()


def test_samples_panel_shows_every_sample_and_forwards_the_temperature():
    class RecordingDensity:
        temperatures: list[float] = []

        def log_prob(self, x: Tensor) -> Tensor:
            return -0.5 * (x**2).sum(dim=1) - math.log(2 * math.pi)

        def sample(self, num_samples: int, temperature: float = 1.0) -> Tensor:
            self.temperatures.append(temperature)
            return temperature * torch.randn(num_samples, 2)

    density = RecordingDensity()
    figure = plot_density_and_samples(density, num_samples=123, temperature=0.5, resolution=10)
    scatter = figure.axes[1].collections[0]
    assert isinstance(scatter, PathCollection)
    assert scatter.get_offsets().shape == (123, 2)
    assert density.temperatures == [0.5]
    assert len(figure.axes) == 3 and "0.5" in figure.axes[1].get_title()
    assert all(axes.get_title() for axes in figure.axes[:2])
    assert all(axes.get_xlabel() and axes.get_ylabel() for axes in figure.axes[:2])
    assert "p(x)" in figure.axes[2].get_ylabel()  # the colour bar says what it measures


def test_plotting_leaves_the_model_untouched():
    flow = make_flow(seed=1)
    flow.train()
    before = {k: v.clone() for k, v in flow.state_dict().items()}
    plot_density_and_samples(flow, num_samples=10, resolution=10)
    plot_layers(flow, torch.randn(10, 2))
    assert flow.training
    after = flow.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


# ----------------------------------------------------------------------------- layers


@settings(max_examples=10, deadline=None)
@given(num_layers=st.integers(1, 6), seed=st.integers(0, 1000), max_columns=st.integers(1, 4))
def test_plot_layers_has_one_panel_per_layer_and_ends_in_noise(num_layers, seed, max_columns):
    flow = make_flow(num_layers, seed)
    x = torch.randn(50, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    figure = plot_layers(flow, x, max_columns=max_columns)
    assert len(figure.axes) == num_layers + 1
    first = figure.axes[0].collections[0].get_offsets()
    last = figure.axes[-1].collections[0].get_offsets()
    np.testing.assert_allclose(first, x.numpy())
    np.testing.assert_allclose(last, flow(x)[0].detach().numpy(), rtol=1e-12)
    assert "z" in figure.axes[-1].get_title() and all_labelled(figure)


def test_plot_layers_draws_grids_as_lines_and_accepts_a_single_transform():
    flow = make_flow(2, seed=5)
    grid = grid_lines((-2, 2), num_lines=5, resolution=30)
    assert grid.shape == (10, 30, 2)
    assert bool((grid[:5, :, 1] == grid[:5, :1, 1]).all()), "horizontal lines keep x2 fixed"
    assert bool((grid[5:, :, 0] == grid[5:, :1, 0]).all()), "vertical lines keep x1 fixed"
    assert float(grid.min()) == -2 and float(grid.max()) == 2
    figure = plot_layers(flow, grid)
    last = figure.axes[-1].collections
    assert all(isinstance(c, LineCollection) for c in last)
    drawn = np.concatenate([np.asarray(c.get_segments()) for c in last])
    mapped = flow(grid.reshape(-1, 2).double())[0].detach().reshape(10, 30, 2).numpy()
    np.testing.assert_allclose(drawn, mapped, rtol=1e-12)

    single = plot_layers(flow.transform[0], torch.randn(5, 2, dtype=torch.float64))
    assert len(single.axes) == 2


# ----------------------------------------------------------------------------- MADE


def made_masks(sizes: list[int], seed: int) -> tuple[list[Tensor], list[Tensor]]:
    """Masks of a MADE with ``sizes = [D, H1, ..., D]``, from random hidden degrees."""
    generator = torch.Generator().manual_seed(seed)
    features = sizes[0]
    degrees = [torch.arange(1, features + 1)]
    for hidden in sizes[1:-1]:
        degrees.append(torch.randint(1, max(features, 2), (hidden,), generator=generator))
    degrees.append(torch.arange(1, features + 1))
    masks = [
        (degrees[l + 1][:, None] >= degrees[l][None, :]).float() for l in range(len(sizes) - 2)
    ]
    masks.append((degrees[-1][:, None] > degrees[-2][None, :]).float())
    return masks, degrees


def edges_of(figure, num_masks: int) -> list[LineCollection]:
    return figure.axes[0].collections[:num_masks]


@settings(max_examples=15, deadline=None)
@given(
    features=st.integers(2, 6),
    hidden=st.lists(st.integers(1, 9), min_size=1, max_size=3),
    seed=st.integers(0, 1000),
    with_degrees=st.booleans(),
)
def test_connectivity_has_one_edge_per_one_in_the_masks(features, hidden, seed, with_degrees):
    masks, degrees = made_masks([features, *hidden, features], seed)
    figure = plot_made_connectivity(masks, degrees if with_degrees else None)
    layers = edges_of(figure, len(masks))
    assert all(isinstance(c, LineCollection) for c in layers)
    counts = [len(c.get_segments()) for c in layers]
    assert counts == [int(m.sum()) for m in masks]
    dots = [c for c in figure.axes[0].collections if isinstance(c, PathCollection)]
    assert [len(d.get_offsets()) for d in dots] == [features, *hidden, features]
    ax = figure.axes[0]
    assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()


def test_connectivity_edges_join_the_right_units():
    mask = torch.tensor([[1, 0, 0], [0, 0, 1]])  # out 0 <- in 0, out 1 <- in 2
    figure = plot_made_connectivity([mask])
    segments = sorted(tuple(map(tuple, s)) for s in edges_of(figure, 1)[0].get_segments())
    # Inputs sit at x = -1, 0, 1 (level 0), outputs at x = -0.5, 0.5 (level 1).
    assert segments == [((-1.0, 0.0), (-0.5, 1.0)), ((1.0, 0.0), (0.5, 1.0))]


# ----------------------------------------------------------------------------- images


@settings(max_examples=10, deadline=None)
@given(
    count=st.integers(1, 13),
    nrow=st.integers(1, 6),
    channels=st.sampled_from([1, 3]),
    padding=st.integers(0, 2),
)
def test_image_grid_tiles_every_image(count, nrow, channels, padding):
    images = torch.rand(count, channels, 5, 4, generator=torch.Generator().manual_seed(count))
    figure = plot_image_grid(images, nrow=nrow, padding=padding, value_range=(0, 1))
    assert len(figure.axes) == 1 and len(figure.axes[0].images) == 1
    picture = np.asarray(figure.axes[0].images[0].get_array())
    columns = min(nrow, count)
    rows = math.ceil(count / columns)
    assert picture.shape[:2] == (rows * (5 + padding) + padding, columns * (4 + padding) + padding)
    last = count - 1
    top = padding + (last // columns) * (5 + padding)
    left = padding + (last % columns) * (4 + padding)
    tile = picture[top : top + 5, left : left + 4]
    expected = images[last].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(tile, expected[..., 0] if channels == 1 else expected, rtol=1e-6)
    assert figure.axes[0].get_title() == "images" and figure.axes[0].get_xlabel()


def test_image_grid_maps_the_value_range_to_grey_levels():
    images = torch.tensor([[[[-1.0, 1.0], [3.0, 0.0]]]])
    picture = np.asarray(
        plot_image_grid(images, padding=0, value_range=(-1, 1)).axes[0].images[0].get_array()
    )
    np.testing.assert_allclose(picture, [[0.0, 1.0], [1.0, 0.5]])


def test_samples_at_temperatures_share_the_noise():
    flow = Flow(Compose(), StandardNormal((1, 3, 3))).double()
    temperatures = [0.25, 0.5, 1.0]
    state = torch.get_rng_state()
    figure = plot_samples_at_temperatures(
        flow, temperatures, num_samples=4, nrow=2, value_range=(-10, 10)
    )
    assert torch.equal(state, torch.get_rng_state()), "plotting must not consume global RNG"
    assert len(figure.axes) == len(temperatures)
    pictures = [np.asarray(a.images[0].get_array()) for a in figure.axes]
    tiles = pictures[-1] != 1.0  # padding is white (1.0)
    for temperature, picture in zip(temperatures, pictures, strict=True):
        # The identity flow returns T * z, shown as (T * z + 10) / 20.
        np.testing.assert_allclose(
            picture[tiles] - 0.5, temperature * (pictures[-1][tiles] - 0.5), atol=1e-12
        )
    assert [a.get_title() for a in figure.axes] == ["T = 0.25", "T = 0.5", "T = 1"]


def test_samples_at_temperatures_applies_postprocess():
    flow = Flow(Compose(), StandardNormal((1, 2, 2))).double()
    figure = plot_samples_at_temperatures(
        flow,
        [1.0],
        num_samples=2,
        postprocess=lambda x: torch.zeros_like(x) + 0.3,
        value_range=(0, 1),
    )
    picture = np.asarray(figure.axes[0].images[0].get_array())
    assert set(np.unique(picture)) == {0.3, 1.0}


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda f: plot_density_and_samples(f, bounds=(2, -2)), ValueError),
        (lambda f: plot_density_and_samples(f, bounds=3), TypeError),
        (lambda f: plot_density_and_samples(f, resolution=1), ValueError),
        (lambda f: plot_density_and_samples(f, num_samples=-1), ValueError),
        (lambda f: plot_density_and_samples(f, temperature=0.0), ValueError),
        (lambda f: plot_density_and_samples(object()), TypeError),
        (lambda f: plot_density_and_samples(lambda x: x.sum(1), num_samples=5), TypeError),
        (lambda f: plot_density_and_samples(lambda x: x, num_samples=0), ValueError),
        (lambda f: plot_layers(f, [[0.0, 1.0]]), TypeError),
        (lambda f: plot_layers(f, torch.zeros(4, 3)), ValueError),
        (lambda f: plot_layers(nn.Linear(2, 2), torch.zeros(4, 2)), TypeError),
        (lambda f: grid_lines(num_lines=1), ValueError),
        (lambda f: plot_made_connectivity([]), TypeError),
        (lambda f: plot_made_connectivity([torch.ones(3)]), ValueError),
        (lambda f: plot_made_connectivity([torch.full((2, 2), 2.0)]), ValueError),
        (lambda f: plot_made_connectivity([torch.ones(3, 2), torch.ones(2, 4)]), ValueError),
        (lambda f: plot_made_connectivity([torch.ones(3, 2)], degrees=[[1, 2]]), ValueError),
        (lambda f: plot_image_grid(torch.zeros(2, 2, 4, 4)), ValueError),
        (lambda f: plot_image_grid(torch.zeros(0, 1, 4, 4)), ValueError),
        (lambda f: plot_image_grid(np.zeros((2, 1, 4, 4))), TypeError),
        (lambda f: plot_image_grid(torch.full((1, 1, 2, 2), float("nan"))), ValueError),
        (lambda f: plot_image_grid(torch.zeros(1, 1, 2, 2), nrow=0), ValueError),
        (lambda f: plot_samples_at_temperatures(f, []), ValueError),
        (lambda f: plot_samples_at_temperatures(f, [-1.0]), ValueError),
        (lambda f: plot_samples_at_temperatures(object(), [1.0]), TypeError),
    ],
)
def test_bad_input_says_what_was_expected(call, error):
    with pytest.raises(error, match="expected"):
        call(make_flow(2))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_figures_of_a_model_on_the_gpu():
    flow = make_flow(seed=2).cuda()
    figure = plot_density_and_samples(flow, num_samples=50, resolution=20)
    expected = density_on_grid(flow.cpu(), resolution=20)[1].numpy()
    np.testing.assert_allclose(figure.axes[0].images[0].get_array(), expected, rtol=1e-10)
    assert len(plot_layers(flow.cuda(), torch.randn(10, 2)).axes) == 4
    image_flow = Flow(Compose(), StandardNormal((1, 3, 3))).cuda()
    assert len(plot_samples_at_temperatures(image_flow, [0.5, 1.0], num_samples=4).axes) == 2
