r"""MAF: the masked autoregressive flow layer (Papamakarios et al., 2017).

A MADE reads the data and returns a shift :math:`\mu_i(x_{<i})` and a log-scale
:math:`\alpha_i(x_{<i})` for every feature. Scoring data (data to noise) is one pass,
sampling (noise to data) is :math:`D` passes. Taught in the chapter *MAF*.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from flowcourse.autoregressive.made import MADE
from flowcourse.core import Transform
from flowcourse.coupling.affine import soft_clamp
from flowcourse.validation import check_features, check_matches_module

__all__ = ["MaskedAffineAutoregressive"]


class _MaskedAutoregressive(Transform):
    """What every MADE-based layer shares: the MADE, its ordering, and input checks."""

    def __init__(
        self,
        features: int,
        hidden_features: int | Sequence[int],
        num_hidden_layers: int | None,
        order: Tensor | Sequence[int] | None,
        seed: int,
        context_features: int,
    ) -> None:
        super().__init__()
        self.features = features
        self.made = MADE(
            features,
            hidden_features,
            num_hidden_layers,
            output_multiplier=2,
            order=order,
            seed=seed,
            context_features=context_features,
        )

    @property
    def order(self) -> Tensor:
        """Position of each feature in the autoregressive ordering (1 to D)."""
        return self.made.order

    def _check(self, x: Tensor, name: str) -> Tensor:
        return check_matches_module(check_features(x, self.features, name), self, name)


class _AffineAutoregressive(_MaskedAutoregressive):
    """A MADE that outputs a shift and a soft-clamped log-scale: shared by MAF and IAF."""

    def __init__(
        self,
        features: int,
        hidden_features: int | Sequence[int] = 64,
        num_hidden_layers: int | None = None,
        order: Tensor | Sequence[int] | None = None,
        seed: int = 0,
        context_features: int = 0,
        log_scale_bound: float = 3.0,
    ) -> None:
        super().__init__(
            features, hidden_features, num_hidden_layers, order, seed, context_features
        )
        self.log_scale_bound = _check_bound(log_scale_bound)

    def _shift_and_log_scale(self, u: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor]:
        shift, raw_log_scale = self.made(u, context).chunk(2, dim=1)
        return shift, soft_clamp(raw_log_scale, self.log_scale_bound)


class MaskedAffineAutoregressive(_AffineAutoregressive):
    r"""One MAF layer (Papamakarios et al., 2017): an affine map conditioned on earlier data.

    Data to noise (``forward``, one pass of the MADE on :math:`x`):

    .. math::

        z_i = (x_i - \mu_i(x_{<i}))\, e^{-\alpha_i(x_{<i})}, \qquad
        \log\left|\det \frac{\partial z}{\partial x}\right| = -\sum_i \alpha_i .

    Noise to data (``inverse``) must rebuild :math:`x` one position at a time,
    :math:`x_i = z_i e^{\alpha_i(x_{<i})} + \mu_i(x_{<i})`, so it takes :math:`D` passes:
    MAF is fast to score and slow to sample. The log-scale is soft-clamped,
    :math:`\alpha = b \tanh(\tilde\alpha / b)` with :math:`b` = ``log_scale_bound``, and the
    MADE's last layer starts at zero, so a fresh layer is the identity. ``order`` (a
    permutation of ``1..D``, default ``1..D``) sets which features condition which;
    stacks usually reverse it from one layer to the next. An optional ``context`` of
    ``context_features`` values per sample makes the layer conditional.
    Taught in the chapter *MAF*.

    Example:
        >>> layer = MaskedAffineAutoregressive(3, hidden_features=8)
        >>> z, log_abs_det = layer(torch.randn(4, 3))
        >>> z.shape, log_abs_det.shape
        (torch.Size([4, 3]), torch.Size([4]))
    """

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        x = self._check(x, "x")
        shift, log_scale = self._shift_and_log_scale(x, context)
        z = (x - shift) * torch.exp(-log_scale)
        return z, -log_scale.sum(dim=1)

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        z = self._check(z, "z")
        x = torch.zeros_like(z)
        # Pass t solves the feature at position t in the ordering: its shift and scale read
        # only earlier positions, solved already. Later positions stay 0 (rewriting them
        # every pass would feed the MADE garbage that can grow by e^bound per pass).
        for position in range(1, self.features + 1):
            shift, log_scale = self._shift_and_log_scale(x, context)
            x = torch.where(self.order == position, z * torch.exp(log_scale) + shift, x)
        # The last pass read every position but the last one, so all its scales are final.
        return x, log_scale.sum(dim=1)


def _check_bound(bound: float) -> float:
    is_number = isinstance(bound, (int, float)) and not isinstance(bound, bool)
    if not is_number or not math.isfinite(bound) or bound <= 0:
        raise ValueError(f"expected log_scale_bound to be a positive float, got {bound!r}")
    return float(bound)
