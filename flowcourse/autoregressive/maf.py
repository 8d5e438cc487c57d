r"""MAF: the masked autoregressive flow layer (Papamakarios et al., 2017).

A MADE reads the data and returns a shift :math:`\mu_i(x_{<i})` and a log-scale
:math:`\alpha_i(x_{<i})` for every feature. Scoring data (data to noise) is one pass,
sampling (noise to data) is :math:`D` passes. Taught in the chapter *MAF*.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from flowcourse.autoregressive.inversion import made_autoregressive_inverse
from flowcourse.autoregressive.made import MADE
from flowcourse.core import Transform
from flowcourse.coupling.affine import soft_clamp
from flowcourse.validation import (
    check_context,
    check_features,
    check_matches_module,
    check_positive_float,
)

__all__ = ["MaskedAutoregressive", "MaskedAffineAutoregressive"]


class MaskedAutoregressive(Transform):
    r"""The base of every MADE-based layer: a MADE, its ordering, and its input check.

    It holds ``self.made``, a :class:`~flowcourse.autoregressive.MADE` over ``features``
    inputs with ``output_multiplier`` outputs per feature (and a context of
    ``context_features`` values, if any), and checks that an input is a ``(batch,
    features)`` tensor with the layer's dtype and device and the context it was built
    for. A subclass computes its map from ``self.made(u, context)`` and runs its
    :math:`D`-pass direction with
    :func:`~flowcourse.autoregressive.autoregressive_inverse` over ``self.order``, or
    its faster form for MADE-based layers,
    ``made_autoregressive_inverse`` (in ``flowcourse.autoregressive.inversion``):
    MAF's and IAF's affine layers (2 outputs per feature), the gated IAF step, and the
    spline layer of the chapter *Neural spline flows* (:math:`3K - 1` outputs).
    """

    def __init__(
        self,
        features: int,
        hidden_features: int | Sequence[int],
        num_hidden_layers: int | None,
        order: Tensor | Sequence[int] | None,
        seed: int,
        context_features: int,
        *,
        output_multiplier: int = 2,
    ) -> None:
        super().__init__()
        self.features = features
        self.made = MADE(
            features,
            hidden_features,
            num_hidden_layers,
            output_multiplier=output_multiplier,
            order=order,
            seed=seed,
            context_features=context_features,
        )

    @property
    def order(self) -> Tensor:
        """Position of each feature in the autoregressive ordering (1 to D)."""
        return self.made.order

    @property
    def context_features(self) -> int:
        """The size of the context the layer takes, 0 for none."""
        return self.made.context_features

    def check_input(self, x: object, inverse: bool = False, context: Tensor | None = None) -> None:
        name = "z" if inverse else "x"
        x = check_matches_module(check_features(x, self.features, name), self, name)
        check_context(context, self.context_features, x.shape[0], self)


class _AffineAutoregressive(MaskedAutoregressive):
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
        self.log_scale_bound = check_positive_float(log_scale_bound, "log_scale_bound")

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
        shift, log_scale = self._shift_and_log_scale(x, context)
        z = (x - shift) * torch.exp(-log_scale)
        return z, -log_scale.sum(dim=1)

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        def to_data(z: Tensor, shift: Tensor, raw_log_scale: Tensor) -> tuple[Tensor, Tensor]:
            # x_i = z_i e^alpha_i + mu_i, with mu_i and alpha_i read from x's earlier positions.
            log_scale = soft_clamp(raw_log_scale, self.log_scale_bound)
            return z * torch.exp(log_scale) + shift, log_scale

        return made_autoregressive_inverse(self.made, to_data, z, context)
