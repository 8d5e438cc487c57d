r"""Activation normalisation: a per-channel affine map with data-dependent initialisation."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from flowcourse.core import Transform
from flowcourse.validation import check_channels, check_positive_int

__all__ = ["ActNorm"]


class ActNorm(Transform):
    r"""Per-channel affine normalisation (Kingma & Dhariwal 2018, Glow, Sec. 3.1).

    For each channel :math:`c` (dimension 1 of a vector ``(batch, C)`` or of an image
    ``(batch, C, H, W)``),

    .. math::

        z_c = (x_c - b_c)\, e^{s_c}, \qquad
        \log\left|\det \frac{\partial z}{\partial x}\right| = H W \sum_c s_c,

    with :math:`H W = 1` for vectors. The first ``forward`` call in training mode sets
    :math:`b_c` to the mean and :math:`e^{-s_c}` to the standard deviation of channel
    :math:`c` over that batch (all axes but dimension 1), so the batch comes out with zero
    mean and unit variance per channel; afterwards ``b`` and ``s`` are ordinary parameters.
    Unlike batch normalisation, the map does not depend on the batch after initialisation.

    The ``initialized`` flag is a registered buffer, so it travels with ``state_dict``
    and ``.to(...)``: a loaded model is never re-initialised on new data. Until the
    layer has seen data, ``forward`` in evaluation mode and ``inverse`` raise.
    Taught in the chapter *Glow*.

    Example:
        >>> import torch
        >>> layer = ActNorm(2)
        >>> x = 3.0 + 2.0 * torch.randn(256, 2)
        >>> z, log_abs_det = layer(x)  # initialises on this batch
        >>> z.mean(dim=0).abs().max() < 1e-5, (z.var(dim=0, unbiased=False) - 1).abs().max() < 1e-4
        (tensor(True), tensor(True))
        >>> bool(torch.allclose(layer.inverse(z)[0], x, atol=1e-5))
        True
    """

    # Keeps exp(s) finite when a channel of the initialisation batch is constant.
    min_std: float = 1e-6

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = check_positive_int(num_features, "num_features")
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.log_scale = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("initialized", torch.tensor(False))

    def _broadcast(self, parameter: Tensor, x: Tensor) -> Tensor:
        # (C,) -> (1, C) for vectors, (1, C, 1, 1) for images.
        return parameter.reshape(1, -1, *([1] * (x.dim() - 2)))

    def _log_abs_det(self, x: Tensor) -> Tensor:
        pixels = math.prod(x.shape[2:])  # H * W for images, 1 for vectors
        return (pixels * self.log_scale.sum()).expand(x.shape[0])

    @torch.no_grad()
    def initialize(self, x: Tensor) -> None:
        """Set bias and scale so that each channel of ``x`` has zero mean and unit variance."""
        x = check_channels(x, self.num_features, self)
        per_channel = x.transpose(0, 1).reshape(self.num_features, -1)
        if per_channel.shape[1] < 2:
            raise ValueError(
                f"expected at least 2 values per channel to initialise ActNorm (the variance "
                f"of one value is undefined), got x of shape {tuple(x.shape)}; "
                "initialise on a larger batch"
            )
        std = per_channel.std(dim=1, unbiased=False).clamp_min(self.min_std)
        self.bias.copy_(per_channel.mean(dim=1))
        self.log_scale.copy_(-std.log())
        self.initialized.fill_(True)

    def _require_initialized(self, direction: str) -> None:
        if not bool(self.initialized):
            raise RuntimeError(
                f"expected an initialised ActNorm before calling {direction}, got one that has "
                "not seen data yet: call forward on a batch of data in training mode first "
                "(or load a trained state_dict)"
            )

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if not bool(self.initialized):
            if not self.training:
                self._require_initialized("forward in evaluation mode")
            self.initialize(x)
        z = (x - self._broadcast(self.bias, x)) * self._broadcast(self.log_scale, x).exp()
        return z, self._log_abs_det(x)

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        self._require_initialized("inverse")
        x = z * (-self._broadcast(self.log_scale, z)).exp() + self._broadcast(self.bias, z)
        return x, -self._log_abs_det(z)

    def check_input(self, x: object, inverse: bool = False, context: Tensor | None = None) -> None:
        check_channels(x, self.num_features, self, name="z" if inverse else "x")

    def extra_repr(self) -> str:
        return f"{self.num_features}, initialized={bool(self.initialized)}"
