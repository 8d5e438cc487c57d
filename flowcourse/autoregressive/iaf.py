r"""IAF: inverse autoregressive flow layers (Kingma et al., 2016).

IAF mirrors MAF: the MADE reads the *noise* :math:`z`, so sampling (noise to data,
``inverse`` in this package) is one pass and scoring data (``forward``) takes
:math:`D` passes. That suits variational inference, which samples and scores its own
samples, and never scores outside data. Taught in the chapter *IAF*.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor
from torch.nn import functional as F

from flowcourse.autoregressive.inversion import made_autoregressive_inverse
from flowcourse.autoregressive.maf import MaskedAutoregressive, _AffineAutoregressive
from flowcourse.coupling.affine import soft_clamp

__all__ = ["InverseAutoregressive", "GatedInverseAutoregressive"]


class InverseAutoregressive(_AffineAutoregressive):
    r"""One affine IAF layer (Kingma et al., 2016), sampling in one pass.

    Noise to data (``inverse``, one pass of the MADE on :math:`z`):

    .. math::

        x_i = z_i\, e^{\alpha_i(z_{<i})} + \mu_i(z_{<i}), \qquad
        \log\left|\det \frac{\partial x}{\partial z}\right| = \sum_i \alpha_i .

    Data to noise (``forward``) solves for :math:`z` one position at a time,
    :math:`z_i = (x_i - \mu_i(z_{<i}))\, e^{-\alpha_i(z_{<i})}`, in :math:`D` passes, and
    returns :math:`-\sum_i \alpha_i`; like every density direction of IAF it is meant for
    points the layer could have sampled. The log-scale is soft-clamped as in
    :class:`~flowcourse.autoregressive.MaskedAffineAutoregressive`, and a fresh layer is
    the identity. Taught in the chapter *IAF*.

    Example:
        >>> layer = InverseAutoregressive(3, hidden_features=8)
        >>> x, log_abs_det = layer.inverse(torch.randn(4, 3))
        >>> x.shape, log_abs_det.shape
        (torch.Size([4, 3]), torch.Size([4]))
    """

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        shift, log_scale = self._shift_and_log_scale(z, context)
        return z * torch.exp(log_scale) + shift, log_scale.sum(dim=1)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        def to_noise(x: Tensor, shift: Tensor, raw_log_scale: Tensor) -> tuple[Tensor, Tensor]:
            # z_i = (x_i - mu_i) e^-alpha_i, with mu_i and alpha_i read from z's earlier positions.
            log_scale = soft_clamp(raw_log_scale, self.log_scale_bound)
            return (x - shift) * torch.exp(-log_scale), -log_scale

        return made_autoregressive_inverse(self.made, to_noise, x, context)


class GatedInverseAutoregressive(MaskedAutoregressive):
    r"""The gated IAF step of Kingma et al. (2016), Algorithm 1, as a transform.

    The MADE reads the noise (and an optional context :math:`h`) and returns
    :math:`(m, s)`; with :math:`\sigma = \operatorname{sigmoid}(s)`, noise to data
    (``inverse``, one pass) is

    .. math::

        x = \sigma \odot z + (1 - \sigma) \odot m, \qquad
        \log\left|\det \frac{\partial x}{\partial z}\right| = \sum_i \log \sigma_i .

    The update is a convex mix of the old value and a proposal, like an LSTM gate, which
    the paper found trains more stably than the plain affine step. The bias of :math:`s`
    starts at ``gate_bias`` (the paper suggests +1 or +2) so that :math:`\sigma` starts
    near 1 and the step near the identity. ``forward`` (data to noise) inverts the update
    position by position, :math:`z_i = (x_i - (1 - \sigma_i) m_i) / \sigma_i`, in :math:`D`
    passes. That direction expands (it divides by :math:`\sigma < 1`, and a large
    :math:`z_i` can close the gates of later features further), so data far from what the
    layer samples can map to huge :math:`z`, even overflow in float32. IAF is built to
    sample and to score its own samples, where this does not happen.
    Taught in the chapter *IAF*.

    Example:
        >>> step = GatedInverseAutoregressive(3, hidden_features=8, context_features=2)
        >>> x, log_abs_det = step.inverse(torch.randn(4, 3), context=torch.randn(4, 2))
        >>> x.shape, log_abs_det.shape
        (torch.Size([4, 3]), torch.Size([4]))
    """

    def __init__(
        self,
        features: int,
        hidden_features: int | Sequence[int] = 64,
        num_hidden_layers: int | None = None,
        order: Tensor | Sequence[int] | None = None,
        seed: int = 0,
        context_features: int = 0,
        gate_bias: float = 2.0,
    ) -> None:
        super().__init__(
            features, hidden_features, num_hidden_layers, order, seed, context_features
        )
        if isinstance(gate_bias, bool) or not isinstance(gate_bias, (int, float)):
            raise TypeError(f"expected gate_bias to be a number, got {type(gate_bias).__name__}")
        if not math.isfinite(gate_bias):
            raise ValueError(f"expected gate_bias to be a finite number, got {gate_bias!r}")
        with torch.no_grad():
            self.made.layers[-1].bias[features:] = float(gate_bias)

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        proposal, gate_logit = self.made(z, context).chunk(2, dim=1)
        gate = torch.sigmoid(gate_logit)
        x = gate * z + (1 - gate) * proposal
        # logsigmoid is log(sigmoid) without the underflow for very negative logits.
        return x, F.logsigmoid(gate_logit).sum(dim=1)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        def to_noise(x: Tensor, proposal: Tensor, gate_logit: Tensor) -> tuple[Tensor, Tensor]:
            # z_i = (x_i - (1 - sigma_i) m_i) / sigma_i, with m_i and sigma_i read from z_<i.
            gate = torch.sigmoid(gate_logit)
            return (x - (1 - gate) * proposal) / gate, -F.logsigmoid(gate_logit)

        return made_autoregressive_inverse(self.made, to_noise, x, context)
