"""Helpers shared by the unit tests."""

from __future__ import annotations

import torch
from torch import nn


def randomize_parameters(module: nn.Module, seed: int = 0, scale: float = 0.3) -> nn.Module:
    """Overwrite every parameter with small random values.

    Conditioners start at zero (so fresh layers are the identity); a test of the
    log-determinant or of the Jacobian's structure on the identity could not fail.
    """
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            noise = torch.randn(parameter.shape, generator=generator, dtype=torch.float64)
            parameter.copy_((scale * noise).to(parameter.dtype))
    return module
