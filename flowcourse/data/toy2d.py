r"""Toy densities with exact log-densities: the targets of the 2-D chapters.

Each density is a small class with ``log_prob(x) -> (batch,)`` (exact, in nats) and
``sample(num_samples, generator)``. Most are mixtures of isotropic Gaussians,

.. math::

    p(x) = \sum_{k=1}^{K} w_k\, \mathcal{N}(x;\, \mu_k,\, \sigma^2 I),

with the means laid along a ring, two arcs, circles or a spiral, so a flow's samples
can be scored against the true density and its KL divergence measured. The densities
are not ``nn.Module`` s: they have no parameters to learn and compute in the dtype
and on the device of the points they are given. Taught in the chapter *NICE* (the
first chapter that fits a flow to them) and used throughout the book.

Example:
    >>> from flowcourse.data import TwoMoons
    >>> moons = TwoMoons()
    >>> x = moons.sample(5, generator=0)
    >>> x.shape, moons.log_prob(x).shape
    (torch.Size([5, 2]), torch.Size([5]))
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

from flowcourse.validation import check_features, check_positive_float, check_positive_int

__all__ = [
    "EntropyEstimate",
    "ToyDensity",
    "GaussianMixture",
    "EightGaussians",
    "TwoMoons",
    "Rings",
    "Spiral",
    "Checkerboard",
    "RotatedMixture",
    "DENSITIES",
    "get_density",
]

# Points per chunk when evaluating a mixture: bounds the (chunk, components) intermediate
# to a few MB, so a 400 x 400 grid never exhausts memory.
_CHUNK = 8192


class EntropyEstimate(NamedTuple):
    """A Monte-Carlo estimate of an entropy in nats, with its standard error."""

    nats: float
    standard_error: float


def _as_generator(generator: torch.Generator | int | None) -> torch.Generator | None:
    if generator is None or isinstance(generator, torch.Generator):
        return generator
    if isinstance(generator, bool) or not isinstance(generator, int):
        raise TypeError(
            f"expected generator to be a torch.Generator, an int seed or None, "
            f"got {type(generator).__name__}"
        )
    return torch.Generator().manual_seed(generator)


class ToyDensity:
    r"""Base class: a density on :math:`\mathbb{R}^D` with an exact ``log_prob`` and ``sample``.

    Subclasses implement ``_log_prob(x)`` and ``_sample(num_samples, generator)`` in
    float64 on the CPU; the public methods validate the input and convert dtypes.
    ``bounds`` is a square (per axis) that holds essentially all of the mass: use it
    for plots and for :func:`flowcourse.checks.check_normalized`.
    """

    features: int = 2
    bounds: tuple[float, float] = (-4.0, 4.0)

    def log_prob(self, x: Tensor) -> Tensor:
        r"""Exact :math:`\log p(x)` in nats for ``x`` of shape ``(batch, features)``."""
        x = check_features(x, self.features)
        return self._log_prob(x)

    def sample(
        self,
        num_samples: int,
        generator: torch.Generator | int | None = None,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> Tensor:
        """Draw ``num_samples`` points of shape ``(num_samples, features)``.

        ``generator`` is a CPU ``torch.Generator`` or an int seed (the same seed gives
        the same points); ``None`` uses torch's global random state.
        """
        check_positive_int(num_samples, "num_samples")
        samples = self._sample(num_samples, _as_generator(generator))
        return samples.to(dtype=dtype, device=device)

    def entropy(self, num_samples: int = 100_000, seed: int = 0) -> EntropyEstimate:
        r"""Monte-Carlo entropy :math:`H = -\mathbb{E}_p[\log p(x)]` in nats, with standard error.

        The negative log-likelihood of a perfect model on this data equals ``H``: the
        floor that a trained flow's test loss approaches.
        """
        check_positive_int(num_samples, "num_samples")
        x = self.sample(num_samples, generator=seed, dtype=torch.float64)
        negative_log_prob = -self.log_prob(x)
        standard_error = float(negative_log_prob.std()) / math.sqrt(num_samples)
        return EntropyEstimate(float(negative_log_prob.mean()), standard_error)

    def _log_prob(self, x: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _sample(self, num_samples: int, generator: torch.Generator | None) -> Tensor:
        raise NotImplementedError  # pragma: no cover - abstract

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class GaussianMixture(ToyDensity):
    r"""A mixture of isotropic Gaussians :math:`\sum_k w_k \mathcal{N}(x; \mu_k, \sigma_k^2 I)`.

    Args:
        means: component means, shape ``(components, features)``.
        std: one standard deviation for all components, or one per component.
        weights: mixture weights (normalised here); equal weights when ``None``.

    Example:
        >>> from flowcourse.data import GaussianMixture
        >>> mixture = GaussianMixture(torch.tensor([[-1.0, 0.0], [1.0, 0.0]]), std=0.5)
        >>> mixture.log_prob(torch.zeros(1, 2)).exp()  # two components, each 0.5 * N(1; 0, 0.25)
        tensor([0.0862])
    """

    def __init__(self, means: Tensor, std: float | Tensor, weights: Tensor | None = None) -> None:
        means = torch.as_tensor(means, dtype=torch.float64)
        if means.dim() != 2 or means.shape[0] < 1:
            raise ValueError(
                f"expected means of shape (components, features), got {tuple(means.shape)}"
            )
        num_components, self.features = means.shape
        stds = torch.as_tensor(std, dtype=torch.float64).expand(num_components).clone()
        if not bool((stds > 0).all()):
            raise ValueError(f"expected positive standard deviations, got {stds.tolist()}")
        if weights is None:
            weights = torch.ones(num_components, dtype=torch.float64)
        weights = torch.as_tensor(weights, dtype=torch.float64)
        if weights.shape != (num_components,) or not bool((weights > 0).all()):
            raise ValueError(
                f"expected {num_components} positive weights, got shape {tuple(weights.shape)}"
            )
        self.means = means
        self.stds = stds
        self.log_weights = (weights / weights.sum()).log()

    def _log_prob(self, x: Tensor) -> Tensor:
        # float64 on the CPU whatever the input: the squared distances below are expanded
        # as |x|^2 - 2 x.mu + |mu|^2 (one matrix product, fast for hundreds of components),
        # which would cancel badly in float32. `.to` keeps gradients flowing to x.
        points = x.to(device="cpu", dtype=torch.float64)
        # log w_k - D log sigma_k - D/2 log(2 pi): everything that does not depend on x.
        constant = self.log_weights - self.features * (
            self.stds.log() + 0.5 * math.log(2 * math.pi)
        )
        squared_means = (self.means**2).sum(dim=1)
        chunks = []
        for chunk in points.split(_CHUNK):
            squared = (chunk**2).sum(dim=1, keepdim=True) - 2 * chunk @ self.means.T + squared_means
            log_terms = constant - 0.5 * squared.clamp(min=0) / self.stds**2
            chunks.append(torch.logsumexp(log_terms, dim=1))
        log_prob = torch.cat(chunks) if chunks else points.new_zeros(0)
        return log_prob.to(device=x.device, dtype=x.dtype)

    def _sample(self, num_samples: int, generator: torch.Generator | None) -> Tensor:
        probabilities = self.log_weights.exp()
        component = torch.multinomial(probabilities, num_samples, True, generator=generator)
        noise = torch.randn(num_samples, self.features, generator=generator, dtype=torch.float64)
        return self.means[component] + self.stds[component, None] * noise


class EightGaussians(GaussianMixture):
    r"""Eight equally weighted Gaussians evenly spaced on a circle of radius ``radius``.

    :math:`\mu_k = r(\cos 2\pi k/8, \sin 2\pi k/8)`, :math:`\sigma` = ``std``.

    Example:
        >>> from flowcourse.data import EightGaussians
        >>> EightGaussians().sample(3, generator=0).shape
        torch.Size([3, 2])
    """

    def __init__(self, radius: float = 2.5, std: float = 0.25) -> None:
        radius = check_positive_float(radius, "radius")
        angles = 2 * math.pi * torch.arange(8, dtype=torch.float64) / 8
        super().__init__(radius * torch.stack([angles.cos(), angles.sin()], 1), std)
        self.radius = radius

    def __repr__(self) -> str:
        return f"EightGaussians(radius={self.radius}, std={self.stds[0].item()})"


class TwoMoons(GaussianMixture):
    r"""Two interleaved half circles, each a row of Gaussians along its arc.

    The arcs are those of scikit-learn's ``make_moons``, scaled by ``scale`` and centred:
    :math:`(\cos t, \sin t)` and :math:`(1 - \cos t, \tfrac12 - \sin t)` for
    :math:`t \in [0, \pi]`. The ``components_per_moon`` means are evenly spaced in
    :math:`t` and closer together than ``std``, so the density looks smooth along the
    arc while staying an exact Gaussian mixture.

    Example:
        >>> from flowcourse.data import TwoMoons
        >>> TwoMoons().log_prob(torch.tensor([[-1.0, 1.5], [0.0, 3.5]])).exp() > 1e-3
        tensor([ True, False])
    """

    def __init__(self, scale: float = 2.0, std: float = 0.2, components_per_moon: int = 40) -> None:
        scale = check_positive_float(scale, "scale")
        count = check_positive_int(components_per_moon, "components_per_moon")
        t = torch.linspace(0, math.pi, count, dtype=torch.float64)
        upper = torch.stack([t.cos(), t.sin()], 1)
        lower = torch.stack([1 - t.cos(), 0.5 - t.sin()], 1)
        # (0.5, 0.25) is the centre of the pair of arcs.
        means = scale * (torch.cat([upper, lower]) - torch.tensor([0.5, 0.25], dtype=torch.float64))
        super().__init__(means, std)


class Rings(GaussianMixture):
    r"""Concentric circles with radii ``radii``, each a ring of Gaussians.

    Every circle gets a number of components proportional to its circumference (one
    every ``spacing``) and all components weigh the same, so the density per unit of
    arc length is the same on every ring.

    Example:
        >>> from flowcourse.data import Rings
        >>> Rings().log_prob(torch.tensor([[1.0, 0.0], [1.5, 0.0]])).exp() > 1e-3
        tensor([ True, False])
    """

    def __init__(
        self,
        radii: tuple[float, ...] = (1.0, 2.0, 3.0),
        std: float = 0.1,
        spacing: float = 0.15,
    ) -> None:
        spacing = check_positive_float(spacing, "spacing")
        if not radii or any(not r > 0 for r in radii):
            raise ValueError(f"expected a non-empty tuple of positive radii, got {radii!r}")
        means = []
        for radius in radii:
            count = max(8, round(2 * math.pi * radius / spacing))
            angles = 2 * math.pi * torch.arange(count, dtype=torch.float64) / count
            means.append(radius * torch.stack([angles.cos(), angles.sin()], 1))
        super().__init__(torch.cat(means), std)


class Spiral(GaussianMixture):
    r"""Interleaved arms of an Archimedean spiral :math:`r = b\theta`, each a row of Gaussians.

    Arm :math:`a` is rotated by :math:`2\pi a/A`. The angles :math:`\theta_k` are spaced
    so that consecutive means are roughly ``spacing`` apart (arc length grows like
    :math:`b\theta^2/2`, so :math:`\theta_k \propto \sqrt{k}`).

    Example:
        >>> from flowcourse.data import Spiral
        >>> Spiral().sample(4, generator=1).shape
        torch.Size([4, 2])
    """

    def __init__(
        self,
        arms: int = 2,
        turns: float = 1.25,
        radius: float = 3.5,
        std: float = 0.15,
        spacing: float = 0.15,
    ) -> None:
        arms = check_positive_int(arms, "arms")
        turns = check_positive_float(turns, "turns")
        radius = check_positive_float(radius, "radius")
        spacing = check_positive_float(spacing, "spacing")
        theta_start, theta_end = 0.5, 2 * math.pi * turns
        rate = radius / theta_end  # b in r = b * theta, so the arm ends at `radius`
        arc_length = 0.5 * rate * (theta_end**2 - theta_start**2)
        count = max(8, round(arc_length / spacing))
        fraction = torch.linspace(0, 1, count, dtype=torch.float64)
        theta = (theta_start**2 + fraction * (theta_end**2 - theta_start**2)).sqrt()
        means = []
        for arm in range(arms):
            angle = theta + 2 * math.pi * arm / arms
            means.append(rate * theta[:, None] * torch.stack([angle.cos(), angle.sin()], 1))
        super().__init__(torch.cat(means), std)


def _log_interval_mass(low: Tensor, high: Tensor) -> Tensor:
    r""":math:`\log(\Phi(h) - \Phi(l))` for :math:`l < h`, accurate far in either tail."""
    # Reflect so the interval lies mostly on the negative side, where log_ndtr is accurate.
    flip = (low + high) > 0
    low, high = torch.where(flip, -high, low), torch.where(flip, -low, high)
    log_high, log_low = torch.special.log_ndtr(high), torch.special.log_ndtr(low)
    return log_high + torch.log1p(-torch.exp(log_low - log_high).clamp(max=1.0))


class Checkerboard(ToyDensity):
    r"""Uniform on the 8 dark unit squares of a 4 x 4 board covering :math:`[-2, 2]^2`.

    With ``smoothing`` :math:`= 0` the density is exactly :math:`1/8` on the dark squares
    and ``log_prob`` is :math:`-\infty` elsewhere: fine for training a flow on samples,
    useless for scoring a flow's samples, one of which will land on a light square.
    With ``smoothing`` :math:`= s > 0` the board is convolved with
    :math:`\mathcal{N}(0, s^2 I)`; the density is still exact,

    .. math::

        p(x) = \frac18 \sum_{\text{dark } [a_1, b_1] \times [a_2, b_2]} \prod_{i=1}^{2}
        \left[\Phi\!\left(\frac{b_i - x_i}{s}\right)
        - \Phi\!\left(\frac{a_i - x_i}{s}\right)\right],

    and finite everywhere (computed in log space), and sampling adds
    :math:`\mathcal{N}(0, s^2 I)` noise to a uniform draw.

    Example:
        >>> from flowcourse.data import Checkerboard
        >>> Checkerboard().log_prob(torch.tensor([[-0.5, 1.5], [-1.5, 1.5]]))
        tensor([-2.0794,    -inf])
        >>> bool(Checkerboard(smoothing=0.05).log_prob(torch.tensor([[-1.5, 1.5]])).isfinite())
        True
    """

    bounds = (-3.0, 3.0)

    def __init__(self, smoothing: float = 0.0) -> None:
        if isinstance(smoothing, bool) or not isinstance(smoothing, (int, float)) or smoothing < 0:
            raise ValueError(f"expected smoothing to be a number >= 0, got {smoothing!r}")
        self.smoothing = float(smoothing)
        corners = [(i, j) for i in range(-2, 2) for j in range(-2, 2) if (i + j) % 2 == 0]
        # Lower-left corners of the dark squares: (-2, -2), (-2, 0), (-1, -1), ...
        self.corners = torch.tensor(corners, dtype=torch.float64)

    def _log_prob(self, x: Tensor) -> Tensor:
        if self.smoothing == 0:
            cell = torch.floor(x)
            inside = ((cell >= -2) & (cell <= 1)).all(dim=1)
            dark = (cell.sum(dim=1) % 2) == 0
            log_density = torch.full_like(x[:, 0], -math.log(8))
            return torch.where(inside & dark, log_density, torch.full_like(log_density, -math.inf))
        corners = self.corners.to(x)
        low = (corners - x[:, None, :]) / self.smoothing  # (batch, squares, 2)
        high = (corners + 1 - x[:, None, :]) / self.smoothing
        return torch.logsumexp(_log_interval_mass(low, high).sum(dim=2), dim=1) - math.log(8)

    def _sample(self, num_samples: int, generator: torch.Generator | None) -> Tensor:
        square = torch.randint(len(self.corners), (num_samples,), generator=generator)
        offset = torch.rand(num_samples, 2, generator=generator, dtype=torch.float64)
        x = self.corners[square] + offset
        if self.smoothing > 0:
            noise = torch.randn(num_samples, 2, generator=generator, dtype=torch.float64)
            x = x + self.smoothing * noise
        return x

    def __repr__(self) -> str:
        return f"Checkerboard(smoothing={self.smoothing})"


class RotatedMixture(ToyDensity):
    r"""A randomly rotated product of 1-D Gaussian mixtures in ``features`` dimensions.

    Draw :math:`u_i \sim \sum_k w_{ik} \mathcal{N}(m_{ik}, s_{ik}^2)` independently and
    return :math:`x = Q u` for a random orthogonal :math:`Q`. Since :math:`|\det Q| = 1`,

    .. math::

        \log p(x) = \sum_{i=1}^{D} \log \sum_k w_{ik}\,
        \mathcal{N}\big((Q^\top x)_i;\, m_{ik}, s_{ik}^2\big),

    exact in any dimension: a target for the higher-dimensional chapters (*MADE*, *MAF*)
    whose log-likelihood floor, the entropy, is known. The mixtures and :math:`Q` are
    drawn from ``seed``.

    Example:
        >>> from flowcourse.data import RotatedMixture
        >>> target = RotatedMixture(features=8, seed=0)
        >>> target.log_prob(target.sample(3, generator=0)).shape
        torch.Size([3])
    """

    def __init__(self, features: int = 8, components: int = 2, seed: int = 0) -> None:
        self.features = check_positive_int(features, "features")
        components = check_positive_int(components, "components")
        generator = torch.Generator().manual_seed(int(seed))

        def uniform(low: float, high: float) -> Tensor:
            u = torch.rand(features, components, generator=generator, dtype=torch.float64)
            return low + (high - low) * u

        self.seed = int(seed)
        self.component_means = uniform(-1.5, 1.5)
        self.component_stds = uniform(0.3, 0.6)
        self.component_weights = uniform(0.5, 1.5)
        self.component_weights /= self.component_weights.sum(dim=1, keepdim=True)
        q, r = torch.linalg.qr(
            torch.randn(features, features, generator=generator, dtype=torch.float64)
        )
        # Fixing the signs of R's diagonal makes Q a deterministic function of the seed.
        self.rotation = q * torch.sign(torch.diagonal(r))
        self.bounds = (-7.0, 7.0)

    def _log_prob(self, x: Tensor) -> Tensor:
        u = x @ self.rotation.to(x)  # row form of u = Q^T x
        means, stds = self.component_means.to(x), self.component_stds.to(x)
        log_normal = (
            -0.5 * ((u[:, :, None] - means) / stds) ** 2 - stds.log() - 0.5 * math.log(2 * math.pi)
        )
        log_marginals = torch.logsumexp(self.component_weights.to(x).log() + log_normal, dim=2)
        return log_marginals.sum(dim=1)

    def _sample(self, num_samples: int, generator: torch.Generator | None) -> Tensor:
        component = torch.multinomial(
            self.component_weights, num_samples, True, generator=generator
        ).T  # (num_samples, features)
        rows = torch.arange(self.features)
        noise = torch.randn(num_samples, self.features, generator=generator, dtype=torch.float64)
        u = self.component_means[rows, component] + self.component_stds[rows, component] * noise
        return u @ self.rotation.T

    def __repr__(self) -> str:
        return f"RotatedMixture(features={self.features}, seed={self.seed})"


#: The 2-D toy densities of the book, by name.
DENSITIES: dict[str, type[ToyDensity]] = {
    "eight_gaussians": EightGaussians,
    "moons": TwoMoons,
    "rings": Rings,
    "spiral": Spiral,
    "checkerboard": Checkerboard,
    "rotated_mixture": RotatedMixture,
}


def get_density(name: str, **kwargs: object) -> ToyDensity:
    """Build a toy density by name: ``get_density("moons")`` is ``TwoMoons()``.

    Example:
        >>> from flowcourse.data import get_density
        >>> get_density("checkerboard", smoothing=0.05)
        Checkerboard(smoothing=0.05)
    """
    if name not in DENSITIES:
        raise ValueError(f"expected a density name in {sorted(DENSITIES)}, got {name!r}")
    return DENSITIES[name](**kwargs)
