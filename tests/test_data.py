"""Tests of the toy densities, the digits and the energies of Rezende & Mohamed."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from flowcourse.checks import check_normalized
from flowcourse.data import (
    DENSITIES,
    ENERGIES,
    NUM_CLASSES,
    NUM_LEVELS,
    U1,
    U2,
    Checkerboard,
    EightGaussians,
    GaussianMixture,
    Rings,
    RotatedMixture,
    Spiral,
    TwoMoons,
    get_density,
    load_digits_labels,
    load_digits_tensors,
    log_normalizer,
)

TWO_D = [
    EightGaussians(),
    TwoMoons(),
    Rings(),
    Spiral(),
    Checkerboard(),
    Checkerboard(smoothing=0.05),
    RotatedMixture(features=2, seed=3),
]
IDS = [repr(d) for d in TWO_D]


def grid(bounds, resolution):
    """Midpoints of a resolution x resolution grid on bounds^2, and the cell area."""
    low, high = bounds
    step = (high - low) / resolution
    axis = low + step * (0.5 + torch.arange(resolution, dtype=torch.float64))
    xx, yy = torch.meshgrid(axis, axis, indexing="xy")
    return torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=1), step**2


# --- normalisation and agreement between samples and log_prob ---------------------------


@pytest.mark.parametrize("density", TWO_D, ids=IDS)
def test_density_integrates_to_one(density):
    # 120 cells: the checkerboard's square edges fall between grid midpoints, and the
    # midpoint rule is far more accurate than 1% for Gaussians wider than a cell.
    result = check_normalized(density, bounds=density.bounds, resolution=120, tolerance=0.01)
    assert result, result.message


@pytest.mark.parametrize("density", TWO_D, ids=IDS)
def test_histogram_of_samples_matches_density(density):
    """Total variation between a 16 x 16 histogram of samples and the integrated density."""
    bins, sub = 16, 8
    low, high = density.bounds
    points, area = grid(density.bounds, bins * sub)
    mass = (density.log_prob(points).exp() * area).reshape(bins, sub, bins, sub).sum((1, 3))
    x = density.sample(40_000, generator=1, dtype=torch.float64)
    counts, _, _ = np.histogram2d(
        x[:, 1].numpy(), x[:, 0].numpy(), bins=bins, range=[[low, high], [low, high]]
    )
    frequencies = torch.as_tensor(counts) / len(x)
    total_variation = 0.5 * float((frequencies - mass).abs().sum())
    assert total_variation < 0.03
    # The same statistic tells a density apart from a different one: the test can fail.
    other = 0.8 * x
    counts_other, _, _ = np.histogram2d(
        other[:, 1].numpy(), other[:, 0].numpy(), bins=bins, range=[[low, high], [low, high]]
    )
    assert 0.5 * float((torch.as_tensor(counts_other) / len(x) - mass).abs().sum()) > 0.1


@pytest.mark.parametrize("density", TWO_D, ids=IDS)
def test_monte_carlo_entropy_matches_quadrature(density):
    """-E_samples[log p] must equal -integral p log p computed on a grid, not from samples."""
    points, area = grid(density.bounds, 120)
    log_p = density.log_prob(points)
    p = log_p.exp()
    quadrature = -float((torch.where(p > 0, p * log_p, torch.zeros_like(p))).sum() * area)
    estimate = density.entropy(num_samples=20_000, seed=2)
    assert abs(estimate.nats - quadrature) < 4 * estimate.standard_error + 2e-3


def test_checkerboard_is_exactly_uniform_on_dark_squares():
    board = Checkerboard()
    x = board.sample(1000, generator=0, dtype=torch.float64)
    assert torch.equal(board.log_prob(x), torch.full((1000,), -math.log(8), dtype=torch.float64))
    assert board.entropy(1000).nats == pytest.approx(math.log(8))
    light = torch.tensor([[-1.5, -0.5], [0.5, -0.5], [2.5, 0.5], [0.5, 3.0]], dtype=torch.float64)
    assert torch.isinf(board.log_prob(light)).all()


def test_smoothed_checkerboard_is_finite_everywhere_and_converges():
    far = torch.tensor([[50.0, -50.0], [0.5, 2.5], [-0.5, -0.5]], dtype=torch.float64)
    assert torch.isfinite(Checkerboard(smoothing=0.05).log_prob(far)).all()
    inside = torch.tensor([[0.5, 0.5], [-1.5, -1.5]], dtype=torch.float64)
    sharp = Checkerboard(smoothing=1e-3).log_prob(inside)
    assert torch.allclose(sharp, torch.full_like(sharp, -math.log(8)), atol=1e-9)


def test_rotated_mixture_entropy_in_eight_dimensions():
    """Entropy is rotation invariant: the sum of the 1-D mixtures' entropies by quadrature."""
    target = RotatedMixture(features=8, seed=0)
    u = torch.linspace(-8, 8, 20_001, dtype=torch.float64)[:, None, None]
    means, stds, weights = target.component_means, target.component_stds, target.component_weights
    density = (
        weights * torch.exp(-0.5 * ((u - means) / stds) ** 2) / (stds * math.sqrt(2 * math.pi))
    )
    density = density.sum(dim=2)  # (grid, features)
    step = float(u[1, 0, 0] - u[0, 0, 0])
    assert torch.allclose(density.sum(0) * step, torch.ones(8, dtype=torch.float64), atol=1e-6)
    exact = float(-(density * density.clamp(min=1e-300).log()).sum() * step)
    estimate = target.entropy(num_samples=20_000, seed=1)
    assert abs(estimate.nats - exact) < 4 * estimate.standard_error
    # log p at the samples would differ if the rotation were applied the wrong way round.
    x = target.sample(20_000, generator=1, dtype=torch.float64)
    transposed = RotatedMixture(features=8, seed=0)
    transposed.rotation = target.rotation.T.contiguous()
    assert abs(float(-transposed.log_prob(x).mean()) - exact) > 10 * estimate.standard_error


def test_rotated_mixture_integrates_to_one_in_eight_dimensions():
    """Importance sampling with a moment-matched Gaussian q: E_q[p/q] = integral of p = 1."""
    target = RotatedMixture(features=8, seed=0)
    weights, means, stds = target.component_weights, target.component_means, target.component_stds
    mean_u = (weights * means).sum(1)
    std_u = ((weights * (stds**2 + means**2)).sum(1) - mean_u**2).sqrt() * 1.2
    generator = torch.Generator().manual_seed(0)
    u = mean_u + std_u * torch.randn(50_000, 8, generator=generator, dtype=torch.float64)
    log_q = (-0.5 * ((u - mean_u) / std_u) ** 2 - std_u.log() - 0.5 * math.log(2 * math.pi)).sum(1)
    ratio = (target.log_prob(u @ target.rotation.T) - log_q).exp()
    standard_error = float(ratio.std()) / math.sqrt(len(ratio))
    assert abs(float(ratio.mean()) - 1) < 4 * standard_error + 1e-3
    assert standard_error < 0.02


# --- interface ---------------------------------------------------------------------------


@settings(max_examples=15, deadline=None)
@given(
    name=st.sampled_from(sorted(DENSITIES)),
    num_samples=st.integers(1, 50),
    seed=st.integers(0, 2**31 - 1),
)
def test_sample_shapes_dtypes_and_seeds(name, num_samples, seed):
    density = get_density(name)
    x = density.sample(num_samples, generator=seed)
    assert x.shape == (num_samples, density.features) and x.dtype == torch.float32
    assert torch.equal(x, density.sample(num_samples, generator=seed))
    generator = torch.Generator().manual_seed(seed)
    assert torch.equal(x, density.sample(num_samples, generator=generator))
    log_prob = density.log_prob(x)
    assert log_prob.shape == (num_samples,) and log_prob.dtype == torch.float32
    assert torch.isfinite(log_prob).all()
    as_float64 = density.log_prob(x.double())
    assert torch.allclose(log_prob.double(), as_float64, atol=1e-4, rtol=1e-5)


def test_log_prob_in_chunks_equals_one_pass_and_has_gradients():
    rings = Rings()
    x = torch.randn(10_000, 2, dtype=torch.float64, requires_grad=True)
    whole = rings.log_prob(x)
    parts = torch.cat([rings.log_prob(x[:7]), rings.log_prob(x[7:])])
    assert torch.allclose(whole, parts, rtol=0, atol=1e-12)
    (gradient,) = torch.autograd.grad(whole[:3].sum(), x)
    assert gradient[:3].abs().sum() > 0 and gradient[3:].abs().sum() == 0


def test_gaussian_mixture_matches_closed_form():
    mixture = GaussianMixture(torch.tensor([[-1.0, 0.0], [1.0, 0.0]]), std=0.5, weights=[1, 3])
    x = torch.tensor([[0.3, -0.2]], dtype=torch.float64)

    def normal(mean):
        return math.exp(-0.5 * ((0.3 - mean) ** 2 + 0.2**2) / 0.25) / (2 * math.pi * 0.25)

    expected = math.log(0.25 * normal(-1.0) + 0.75 * normal(1.0))
    assert float(mixture.log_prob(x)) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        (np.zeros((3, 2)), TypeError),
        (torch.zeros(3, 3), ValueError),
        (torch.zeros(3), ValueError),
        (torch.tensor([[0.0, float("nan")]]), ValueError),
        (torch.zeros(3, 2, dtype=torch.int64), TypeError),
    ],
)
def test_bad_points_raise(bad, error):
    with pytest.raises(error, match="expected"):
        TwoMoons().log_prob(bad)


@pytest.mark.parametrize(
    ("build", "error"),
    [
        (lambda: EightGaussians(radius=-1.0), ValueError),
        (lambda: Rings(radii=()), ValueError),
        (lambda: Spiral(arms=0), ValueError),
        (lambda: Checkerboard(smoothing=-0.1), ValueError),
        (lambda: RotatedMixture(features=0), ValueError),
        (lambda: GaussianMixture(torch.zeros(3), std=1.0), ValueError),
        (lambda: GaussianMixture(torch.zeros(2, 2), std=0.0), ValueError),
        (lambda: get_density("banana"), ValueError),
        (lambda: TwoMoons().sample(0), ValueError),
        (lambda: TwoMoons().sample(3, generator="seed"), TypeError),
    ],
)
def test_bad_arguments_raise(build, error):
    with pytest.raises(error, match="expected"):
        build()


# --- digits ------------------------------------------------------------------------------


def test_digits_split_is_fixed_disjoint_and_integer():
    train, test = load_digits_tensors("train"), load_digits_tensors("test")
    assert train.shape == (1438, 1, 8, 8) and test.shape == (359, 1, 8, 8)
    assert train.dtype == torch.float32
    both = torch.cat([train, test])
    assert torch.equal(both, both.round()) and both.min() == 0 and both.max() == NUM_LEVELS - 1
    assert len(torch.unique(both)) == NUM_LEVELS
    assert torch.equal(train, load_digits_tensors("train", seed=0))
    # Every image is in exactly one split (the digits set has a few duplicate images,
    # so compare multisets of images rather than testing membership).
    from sklearn.datasets import load_digits

    everything = torch.as_tensor(load_digits().images, dtype=torch.float32).reshape(-1, 64)
    rows = sorted(map(tuple, both.reshape(-1, 64).tolist()))
    assert rows == sorted(map(tuple, everything.tolist()))
    assert not torch.equal(test, load_digits_tensors("test", seed=1))
    assert len(load_digits_tensors("test", test_fraction=0.5)) == round(1797 * 0.5)


def _pairs(images, labels):
    """The multiset of (64 pixels..., label) rows, sorted."""
    rows = torch.as_tensor(images).reshape(-1, 64).tolist()
    return sorted((*row, label) for row, label in zip(rows, labels.tolist(), strict=True))


@pytest.mark.parametrize(("seed", "test_fraction"), [(0, 0.2), (3, 0.5)])
def test_digits_labels_stay_paired_with_their_images(seed, test_fraction):
    from sklearn.datasets import load_digits

    digits = load_digits()
    expected = _pairs(digits.images, digits.target)  # sklearn's own (image, label) pairs
    pairs, test = [], None
    for split in ("train", "test"):
        images = load_digits_tensors(split, seed=seed, test_fraction=test_fraction)
        labels = load_digits_labels(split, seed=seed, test_fraction=test_fraction)
        assert labels.dtype == torch.int64 and labels.shape == (len(images),)
        assert set(labels.tolist()) == set(range(NUM_CLASSES))  # every class in every split
        pairs += _pairs(images, labels)
        test = images, labels
    # Every image of the two splits carries sklearn's label for it.
    assert sorted(pairs) == expected
    # The comparison notices labels that do not follow their images.
    images, labels = test
    shuffled = labels[torch.randperm(len(labels), generator=torch.Generator().manual_seed(1))]
    assert not set(_pairs(images, shuffled)) <= set(expected)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [({"split": "validation"}, ValueError), ({"test_fraction": 1.0}, ValueError)],
)
@pytest.mark.parametrize("load", [load_digits_tensors, load_digits_labels])
def test_digits_bad_arguments_raise(kwargs, error, load):
    with pytest.raises(error, match="expected"):
        load(**kwargs)


# --- energies ----------------------------------------------------------------------------


def numpy_energies(z):
    """Table 1 of Rezende & Mohamed (2015), written again in numpy."""
    z1, z2 = z[:, 0], z[:, 1]
    w1 = np.sin(2 * np.pi * z1 / 4)
    w2 = 3 * np.exp(-0.5 * ((z1 - 1) / 0.6) ** 2)
    w3 = 3 / (1 + np.exp(-(z1 - 1) / 0.3))
    u1 = 0.5 * ((np.sqrt(z1**2 + z2**2) - 2) / 0.4) ** 2 - np.log(
        np.exp(-0.5 * ((z1 - 2) / 0.6) ** 2) + np.exp(-0.5 * ((z1 + 2) / 0.6) ** 2)
    )
    u2 = 0.5 * ((z2 - w1) / 0.4) ** 2
    u3 = -np.log(
        np.exp(-0.5 * ((z2 - w1) / 0.35) ** 2) + np.exp(-0.5 * ((z2 - w1 + w2) / 0.35) ** 2)
    )
    u4 = -np.log(
        np.exp(-0.5 * ((z2 - w1) / 0.4) ** 2) + np.exp(-0.5 * ((z2 - w1 + w3) / 0.35) ** 2)
    )
    return {"U1": u1, "U2": u2, "U3": u3, "U4": u4}


def test_energies_match_the_paper_formulas():
    z = np.random.default_rng(0).uniform(-3, 3, size=(200, 2))
    expected = numpy_energies(z)
    for name, energy in ENERGIES.items():
        assert np.allclose(energy(torch.as_tensor(z)).numpy(), expected[name], rtol=1e-10), name


@pytest.mark.parametrize("name", sorted(ENERGIES))
def test_energies_are_finite_and_integrable_on_the_box(name):
    points, area = grid((-4.0, 4.0), 200)
    energy = ENERGIES[name](points)
    assert torch.isfinite(energy).all() and torch.isfinite((-energy).exp()).all()
    coarse, fine = log_normalizer(ENERGIES[name], resolution=200), log_normalizer(ENERGIES[name])
    assert math.isfinite(fine) and abs(coarse - fine) < 2e-3
    assert fine == pytest.approx(math.log(float((-energy).exp().sum()) * area), abs=2e-3)


def test_log_normalizers_against_independent_integrals():
    # U2 is a Gaussian band of width 0.4 along a sine: its integral over x2 in [-4, 4] is
    # 0.4 sqrt(2 pi) for every x1 (the tails beyond 7 sigma are negligible).
    assert log_normalizer(U2) == pytest.approx(math.log(8 * 0.4 * math.sqrt(2 * math.pi)), abs=1e-6)
    # U1 in polar coordinates: Gauss-Legendre in r, the (spectrally accurate) periodic
    # trapezoid rule in theta. The ring lies 5 sigma inside the box.
    nodes, node_weights = np.polynomial.legendre.leggauss(200)
    r, r_weights = 2 + 2 * nodes, 2 * node_weights  # mapped from [-1, 1] to [0, 4]
    theta = np.linspace(0, 2 * np.pi, 400, endpoint=False)
    rr, tt = np.meshgrid(r, theta, indexing="ij")
    z = np.stack([rr.ravel() * np.cos(tt.ravel()), rr.ravel() * np.sin(tt.ravel())], axis=1)
    integrand = (rr * np.exp(-numpy_energies(z)["U1"].reshape(rr.shape))).mean(axis=1)
    polar = 2 * np.pi * float((r_weights * integrand).sum())
    assert log_normalizer(U1) == pytest.approx(math.log(polar), abs=1e-4)


def test_energies_reject_bad_points():
    with pytest.raises(ValueError, match=r"expected z of shape \(batch, 2\)"):
        U1(torch.zeros(4, 3))
    with pytest.raises(ValueError, match="expected resolution"):
        log_normalizer(U1, resolution=1)


def test_boxed_energy_is_unchanged_inside_and_normalisable_outside():
    from flowcourse.data.energies import U2, boxed, log_normalizer

    inside = torch.tensor([[0.5, -3.9], [-2.0, 1.0]], dtype=torch.float64)
    assert torch.equal(boxed(U2)(inside), U2(inside))
    outside = torch.tensor([[4.2, 0.0], [0.0, -4.4]], dtype=torch.float64)
    wall = 0.5 * (torch.tensor([0.2, 0.4], dtype=torch.float64) / 0.2) ** 2
    assert torch.allclose(boxed(U2)(outside), U2(outside) + wall)
    # a wider grid adds (almost) no mass: the wall makes U2 normalisable
    wide = log_normalizer(boxed(U2), bounds=(-7.0, 7.0), resolution=700)
    narrow = log_normalizer(boxed(U2), bounds=(-6.0, 6.0), resolution=600)
    assert abs(wide - narrow) < 1e-3
    with pytest.raises(ValueError, match="expected a positive wall_width"):
        boxed(U2, wall_width=0.0)
