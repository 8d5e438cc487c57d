"""Autoregressive flows: MADE, the MAF layer, IAF layers and the IAF posterior of a VAE.

Every layer follows the package convention: ``forward`` maps data to noise and returns
``log|det ∂z/∂x|``. MAF is one MADE pass in that direction and :math:`D` passes back;
IAF is the mirror image (one pass to sample, :math:`D` passes to score data). Every
layer's :math:`D`-pass direction is
:func:`~flowcourse.autoregressive.autoregressive_inverse`; MAF's and IAF's layers run its
fast form for a MADE, :func:`~flowcourse.autoregressive.made_autoregressive_inverse`.
Taught in the chapters *MADE*, *MAF* and *IAF*.
"""

from flowcourse.autoregressive.iaf import GatedInverseAutoregressive, InverseAutoregressive
from flowcourse.autoregressive.inversion import autoregressive_inverse, made_autoregressive_inverse
from flowcourse.autoregressive.made import (
    MADE,
    MaskedLinear,
    hidden_degrees,
    natural_order,
    random_order,
)
from flowcourse.autoregressive.maf import MaskedAffineAutoregressive, MaskedAutoregressive
from flowcourse.autoregressive.posterior import IAFPosterior, IAFPosteriorTransform

__all__ = [
    "MADE",
    "MaskedLinear",
    "hidden_degrees",
    "natural_order",
    "random_order",
    "MaskedAutoregressive",
    "MaskedAffineAutoregressive",
    "InverseAutoregressive",
    "GatedInverseAutoregressive",
    "IAFPosterior",
    "IAFPosteriorTransform",
    "autoregressive_inverse",
    "made_autoregressive_inverse",
]
