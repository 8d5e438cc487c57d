r"""Glow (Kingma & Dhariwal 2018): ActNorm, invertible 1x1 convolutions, the Glow step and a
small multi-scale Glow. Taught in the chapter *Glow*.

Every layer follows the package's direction convention: ``forward`` maps data to noise
and returns ``log|det ∂z/∂x|`` of shape ``(batch,)``.
"""

from flowcourse.glow.actnorm import ActNorm
from flowcourse.glow.conv1x1 import Invertible1x1Conv, LUInvertible1x1Conv, random_rotation
from flowcourse.glow.model import glow_multiscale
from flowcourse.glow.step import CouplingFactory, GlowStep

__all__ = [
    "ActNorm",
    "CouplingFactory",
    "GlowStep",
    "Invertible1x1Conv",
    "LUInvertible1x1Conv",
    "glow_multiscale",
    "random_rotation",
]
