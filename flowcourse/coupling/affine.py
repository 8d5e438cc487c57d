r"""RealNVP's affine coupling: scale and shift half the values by functions of the other half."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from flowcourse.coupling.base import Coupling
from flowcourse.coupling.masks import check_image_mask, check_vector_mask
from flowcourse.nets import ConvNet, CouplingMLP
from flowcourse.validation import check_positive_float

__all__ = ["AffineCoupling", "soft_clamp"]


def soft_clamp(raw: Tensor, bound: float) -> Tensor:
    r"""Squash ``raw`` smoothly into :math:`(-b, b)`: :math:`b \tanh(\text{raw} / b)`.

    Near zero it is the identity (slope 1), so small log-scales train as if unclamped,
    while a runaway conditioner output can no longer overflow :math:`e^{s}`.

    On the CPU in float32 and float64 it is computed as
    :math:`2b\,\sigma(2\,\text{raw}/b) - b`, the same function
    (:math:`\tanh u = 2\sigma(2u) - 1`), because PyTorch's CPU ``sigmoid`` takes about a
    third of the time of its ``tanh`` on a ``(1024, 32)`` tensor; the two forms differ by
    round-off (by less than 1e-6 in float32 and 1e-15 in float64, absolutely; a test
    checks both). Elsewhere (a GPU, half precision) it is the ``tanh`` itself: in
    bfloat16 the sigmoid form would round small values to zero, because :math:`\sigma`
    is near 0.5 there.

    Example:
        >>> soft_clamp(torch.tensor([0.0, 1e6]), bound=3.0)
        tensor([0., 3.])
    """
    if not bound > 0:
        raise ValueError(f"expected bound > 0, got {bound!r}")
    if raw.device.type == "cpu" and raw.dtype in (torch.float32, torch.float64):
        return torch.sigmoid(raw * (2 / bound)) * (2 * bound) - bound
    return bound * torch.tanh(raw / bound)


class AffineCoupling(Coupling):
    r"""The affine coupling layer of RealNVP (Dinh et al. 2017).

    With a binary mask :math:`m` (1 = kept) and a conditioner that maps
    :math:`m \odot x` to a shift :math:`t` and a raw log-scale :math:`\tilde s`, the
    forward map (data to noise) is

    .. math::

        s = b \tanh(\tilde s / b), \qquad
        z = m \odot x + (1 - m) \odot \big(x \odot e^{s} + t\big),

    and the inverse is :math:`x = m \odot z + (1 - m) \odot (z - t) \odot e^{-s}`
    (the conditioner sees :math:`m \odot z = m \odot x`, so it gives the same
    :math:`s, t`). Ordering the kept values first, the Jacobian is block triangular,

    .. math::

        \frac{\partial z}{\partial x} =
        \begin{pmatrix} I & 0 \\ \partial z_{1-m} / \partial x_m & \operatorname{diag}(e^{s})
        \end{pmatrix},
        \qquad \log\left|\det \frac{\partial z}{\partial x}\right| = \sum_i (1 - m_i)\, s_i,

    so the log-determinant costs one sum and the conditioner can be any network: it is
    never inverted. The soft clamp (bound :math:`b`) keeps :math:`|s| < b` so that an
    untrained or diverging conditioner cannot overflow :math:`e^{s}`.
    Taught in the chapter *RealNVP*.

    On vectors with a :class:`~flowcourse.nets.CouplingMLP` (``for_vectors``), the layer
    computes the same map with the zeros dropped: with kept indices :math:`K` and
    transformed ones :math:`T`, it splits :math:`x` into :math:`x_K` and :math:`x_T`,
    computes :math:`s_T, t_T` from :math:`x_K` only, and returns :math:`z_K = x_K`,
    :math:`z_T = x_T \odot e^{s_T} + t_T` and :math:`\sum_{i \in T} s_i`. The masked
    formula multiplies by :math:`m` and :math:`1 - m` and adds zeros; this form skips
    that work, and gives the same values.

    Arguments:
        mask: a ``bool`` mask from :mod:`flowcourse.coupling.masks` (True = kept).
        conditioner: a module mapping the masked input (event shape) to twice the
            channels along dim 1, ``(B, 2D)`` for vectors or ``(B, 2C, H, W)`` for
            images, split by ``chunk(2, dim=1)`` into ``(shift, raw_log_scale)``. Because
            the mask multiplies the input, an image conditioner sees zeros at the
            transformed positions.
        log_scale_bound: the bound :math:`b > 0` of the soft clamp.
        in_channels: for image masks, the number of channels to accept (a checkerboard
            mask broadcasts over channels, so it cannot tell); ``None`` accepts any.

    Example:
        >>> import torch
        >>> from flowcourse.coupling import AffineCoupling, checkerboard_mask
        >>> layer = AffineCoupling.for_images(checkerboard_mask(4, 4), in_channels=2)
        >>> z, log_abs_det = layer(torch.randn(5, 2, 4, 4))
        >>> z.shape, log_abs_det.shape
        (torch.Size([5, 2, 4, 4]), torch.Size([5]))
    """

    def __init__(
        self,
        mask: Tensor,
        conditioner: nn.Module,
        log_scale_bound: float = 3.0,
        *,
        in_channels: int | None = None,
        context_features: int = 0,
    ) -> None:
        super().__init__(
            mask, conditioner, in_channels=in_channels, context_features=context_features
        )
        self.log_scale_bound = check_positive_float(log_scale_bound, "log_scale_bound")

    @classmethod
    def for_vectors(
        cls,
        mask: Tensor,
        hidden_features: int = 64,
        num_hidden_layers: int = 2,
        log_scale_bound: float = 3.0,
        context_features: int = 0,
    ) -> AffineCoupling:
        """An affine coupling on ``(batch, D)`` vectors with a
        :class:`~flowcourse.nets.CouplingMLP` (kept values in, shift and log-scale of the
        others out)."""
        mask = check_vector_mask(mask)
        conditioner = CouplingMLP(mask, 2, hidden_features, num_hidden_layers, context_features)
        return cls(mask, conditioner, log_scale_bound, context_features=context_features)

    @classmethod
    def for_images(
        cls,
        mask: Tensor,
        in_channels: int,
        hidden_channels: int = 64,
        num_hidden_layers: int = 1,
        log_scale_bound: float = 3.0,
    ) -> AffineCoupling:
        """An affine coupling on ``(batch, C, H, W)`` images, conditioned by a ``ConvNet``.

        The network sees zeros at the masked-out (transformed) positions.
        """
        mask = check_image_mask(mask, in_channels)
        conditioner = ConvNet(in_channels, 2 * in_channels, hidden_channels, num_hidden_layers)
        return cls(mask, conditioner, log_scale_bound, in_channels=in_channels)

    def shift_and_log_scale(
        self, x: Tensor, context: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        r"""The shift :math:`t` and clamped log-scale :math:`s`, both zero on the kept values.

        Zeroing them on the kept values makes the forward map simply
        :math:`z = x \odot e^{s} + t`, which leaves the kept values exactly unchanged.
        """
        params = self.conditioner_output(x, context)
        expected = (x.shape[0], 2 * x.shape[1], *x.shape[2:])
        if params.shape != expected:
            raise ValueError(
                f"expected the conditioner to return shape {expected} (twice the input's "
                f"channels: shift and log-scale), got {tuple(params.shape)}"
            )
        shift, raw_log_scale = params.chunk(2, dim=1)
        log_scale = soft_clamp(raw_log_scale, self.log_scale_bound)
        change = 1 - self.mask.to(x.dtype)
        return shift * change, log_scale * change

    def transformed_shift_and_log_scale(
        self, kept: Tensor, context: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        r"""The shift :math:`t_T` and clamped log-scale :math:`s_T` of the transformed
        values only, ``(batch, |T|)`` each, from the kept values ``kept`` :math:`= x_K`
        (a vector coupling with a :class:`~flowcourse.nets.CouplingMLP`)."""
        shift, raw_log_scale = self.conditioner(kept, context, kept_only=True).chunk(2, dim=1)
        return shift, soft_clamp(raw_log_scale, self.log_scale_bound)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if self.split_form():  # the same map, on x_T only
            kept, changed = self.conditioner.split(x)
            shift, log_scale = self.transformed_shift_and_log_scale(kept, context)
            z = self.conditioner.replace_transformed(x, changed * log_scale.exp() + shift)
            return z, log_scale.sum(dim=1)
        shift, log_scale = self.shift_and_log_scale(x, context)
        return x * log_scale.exp() + shift, log_scale.flatten(1).sum(dim=1)

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if self.split_form():  # the same map, on z_T only
            kept, changed = self.conditioner.split(z)
            shift, log_scale = self.transformed_shift_and_log_scale(kept, context)
            x = self.conditioner.replace_transformed(z, (changed - shift) * (-log_scale).exp())
            return x, -log_scale.sum(dim=1)
        shift, log_scale = self.shift_and_log_scale(z, context)
        return (z - shift) * (-log_scale).exp(), -log_scale.flatten(1).sum(dim=1)

    def extra_repr(self) -> str:
        return f"mask_shape={tuple(self.mask.shape)}, log_scale_bound={self.log_scale_bound}"
