r"""Coupling flows: NICE's additive coupling and scaling, RealNVP's affine coupling,
squeeze and multi-scale architecture, and the masks that split their inputs.

A coupling keeps the values a mask marks ``True`` and transforms the rest with
parameters computed from the kept ones; its Jacobian is triangular, so the
log-determinant is a cheap sum. Taught in the chapters *NICE* and *RealNVP*.
"""

from flowcourse.coupling.additive import AdditiveCoupling
from flowcourse.coupling.affine import AffineCoupling, soft_clamp
from flowcourse.coupling.base import Coupling
from flowcourse.coupling.masks import (
    alternating_mask,
    channel_mask,
    checkerboard_mask,
    half_mask,
)
from flowcourse.coupling.multiscale import MultiScale, realnvp_multiscale
from flowcourse.coupling.scaling import DiagonalScaling
from flowcourse.coupling.squeeze import Squeeze

__all__ = [
    "AdditiveCoupling",
    "AffineCoupling",
    "Coupling",
    "DiagonalScaling",
    "MultiScale",
    "Squeeze",
    "alternating_mask",
    "channel_mask",
    "checkerboard_mask",
    "half_mask",
    "realnvp_multiscale",
    "soft_clamp",
]
