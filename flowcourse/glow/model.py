r"""A small multi-scale Glow for the book's 8x8 digits: squeeze, K steps, split, recurse."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from flowcourse.core import Compose, Transform
from flowcourse.coupling import AffineCoupling, MultiScale, Squeeze
from flowcourse.glow.conv1x1 import LUInvertible1x1Conv
from flowcourse.glow.step import CouplingFactory, GlowStep
from flowcourse.validation import check_image_size, check_positive_int

__all__ = ["glow_multiscale"]


def glow_multiscale(
    in_channels: int = 1,
    image_size: int | Sequence[int] = 8,
    num_scales: int = 2,
    steps_per_scale: int = 4,
    hidden_channels: int = 64,
    permutation: Callable[[int], Transform] = LUInvertible1x1Conv,
    coupling: CouplingFactory = AffineCoupling.for_images,
) -> Transform:
    r"""Glow's multi-scale architecture (Kingma & Dhariwal 2018, Fig. 2b), small.

    Each of the ``num_scales`` levels squeezes the image (``C, H, W -> 4C, H/2, W/2``),
    applies ``steps_per_scale`` :class:`~flowcourse.glow.GlowStep` s, and, except at the
    last level, factors out half the channels as final noise and sends the other half to
    the next level (:class:`~flowcourse.coupling.MultiScale`):

    .. math::

        h^{(k)} = \operatorname{step}_K \circ \dots \circ \operatorname{step}_1
                  \big(\operatorname{squeeze}(x^{(k)})\big), \qquad
        (z^{(k)}, x^{(k+1)}) = \operatorname{split}(h^{(k)}),

    and the log-determinant is the sum over all steps (squeezes and splits only move
    values). The factored-out :math:`z^{(k)}` are reassembled into the input's shape, so
    the result maps ``(B, C, H, W)`` to noise of the same shape and plugs into
    ``Flow(model, StandardNormal((C, H, W)))``. Height and width are halved
    ``num_scales`` times, so they must be divisible by :math:`2^{\text{num\_scales}}`.
    For the book's 1x8x8 digits with 2 scales: squeeze to 4x4x4, K steps, factor out
    2x4x4; squeeze 2x4x4 to 8x2x2, K steps. Unlike the paper, the factored-out halves get
    the standard normal prior rather than a learned conditional one, and the
    conditioners are small :class:`~flowcourse.nets.ConvNet` s. ``permutation`` and
    ``coupling`` are passed to every step (see :class:`~flowcourse.glow.GlowStep`).
    Taught in the chapter *Glow*.

    Example:
        >>> import torch
        >>> from flowcourse.core import Flow, StandardNormal
        >>> model = glow_multiscale(1, 8, num_scales=2, steps_per_scale=2, hidden_channels=8)
        >>> flow = Flow(model, StandardNormal((1, 8, 8)))
        >>> flow.log_prob(torch.randn(16, 1, 8, 8)).shape  # first batch initialises ActNorm
        torch.Size([16])
        >>> flow.sample(3).shape
        torch.Size([3, 1, 8, 8])
    """
    in_channels = check_positive_int(in_channels, "in_channels")
    num_scales = check_positive_int(num_scales, "num_scales")
    steps_per_scale = check_positive_int(steps_per_scale, "steps_per_scale")
    hidden_channels = check_positive_int(hidden_channels, "hidden_channels")
    height, width = check_image_size(image_size)
    factor = 2**num_scales
    if height % factor or width % factor:
        raise ValueError(
            f"expected an image height and width divisible by 2**num_scales = {factor} to "
            f"halve them {num_scales} times, got height {height} and width {width}"
        )

    def level(channels: int) -> Compose:
        squeezed = 4 * channels
        steps = [
            GlowStep(squeezed, hidden_channels, permutation, coupling)
            for _ in range(steps_per_scale)
        ]
        return Compose(Squeeze(), *steps)

    # Build from the innermost level outwards, since each level wraps the next. The last
    # level factors out nothing: MultiScale without an inner level just reassembles.
    model: Transform | None = None
    for k in reversed(range(num_scales)):
        model = MultiScale(level(in_channels * 2**k), inner=model)
    return model
