r"""NICE's additive coupling: shift half the values by a function of the other half."""

from __future__ import annotations

from torch import Tensor, nn

from flowcourse.coupling.base import Coupling
from flowcourse.coupling.masks import check_image_mask, check_vector_mask
from flowcourse.nets import ConvNet, CouplingMLP

__all__ = ["AdditiveCoupling"]


class AdditiveCoupling(Coupling):
    r"""The additive coupling layer of NICE (Dinh et al. 2015).

    With a binary mask :math:`m` (1 = kept) and a conditioner :math:`t`, the forward map
    (data to noise) is

    .. math::

        z = m \odot x + (1 - m) \odot \big(x + t(m \odot x)\big).

    The kept values condition the shift of the others, so the Jacobian is triangular
    with ones on the diagonal: :math:`\log|\det \partial z/\partial x| = 0`, the layer
    preserves volume. The inverse subtracts the same shift,
    :math:`x = z - (1 - m) \odot t(m \odot z)`, because :math:`m \odot z = m \odot x`.
    Taught in the chapter *NICE*.

    On vectors with a :class:`~flowcourse.nets.CouplingMLP` (``for_vectors``), the layer
    computes the same map with the zeros dropped: with kept indices :math:`K` and
    transformed ones :math:`T`, it splits :math:`x` into :math:`x_K` and :math:`x_T` and
    returns :math:`z_K = x_K`, :math:`z_T = x_T + t_T(x_K)`, without multiplying by
    :math:`m` and :math:`1 - m` or adding zero shifts to the kept values.

    Arguments:
        mask: a ``bool`` mask from :mod:`flowcourse.coupling.masks` (True = kept).
        conditioner: a module mapping a tensor of the event shape to the same shape,
            e.g. ``(batch, D) -> (batch, D)``. It sees the masked input :math:`m \odot x`,
            so for images it sees zeros at the transformed positions. ``for_vectors``
            uses a :class:`~flowcourse.nets.CouplingMLP`, which reads only the kept
            values and predicts only the others.
        in_channels: for image masks, the number of channels to accept (a checkerboard
            mask broadcasts over channels, so it cannot tell); ``None`` accepts any.
        context_features: the size of a context that conditions the shift (0: none);
            the conditioner is then called as ``conditioner(m * x, context)``.

    Example:
        >>> import torch
        >>> from flowcourse.coupling import AdditiveCoupling, alternating_mask
        >>> layer = AdditiveCoupling.for_vectors(alternating_mask(4), hidden_features=16)
        >>> z, log_abs_det = layer(torch.randn(3, 4))
        >>> z.shape, log_abs_det
        (torch.Size([3, 4]), tensor([0., 0., 0.]))
    """

    def __init__(
        self,
        mask: Tensor,
        conditioner: nn.Module,
        *,
        in_channels: int | None = None,
        context_features: int = 0,
    ) -> None:
        super().__init__(
            mask, conditioner, in_channels=in_channels, context_features=context_features
        )

    @classmethod
    def for_vectors(
        cls,
        mask: Tensor,
        hidden_features: int = 64,
        num_hidden_layers: int = 2,
        context_features: int = 0,
    ) -> AdditiveCoupling:
        """An additive coupling on ``(batch, D)`` vectors with a
        :class:`~flowcourse.nets.CouplingMLP` (kept values in, shifts of the others out)."""
        mask = check_vector_mask(mask)
        conditioner = CouplingMLP(mask, 1, hidden_features, num_hidden_layers, context_features)
        return cls(mask, conditioner, context_features=context_features)

    @classmethod
    def for_images(
        cls, mask: Tensor, in_channels: int, hidden_channels: int = 64, num_hidden_layers: int = 1
    ) -> AdditiveCoupling:
        """An additive coupling on ``(batch, C, H, W)`` images, conditioned by a ``ConvNet``.

        The network sees zeros at the masked-out (transformed) positions.
        """
        mask = check_image_mask(mask, in_channels)
        conditioner = ConvNet(in_channels, in_channels, hidden_channels, num_hidden_layers)
        return cls(mask, conditioner, in_channels=in_channels)

    def shift(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        r"""The shift :math:`(1 - m) \odot t(m \odot x)`; it is zero on the kept values."""
        shift = self.conditioner_output(x, context)
        if shift.shape != x.shape:
            raise ValueError(
                f"expected the conditioner to return shape {tuple(x.shape)} (the input's), "
                f"got {tuple(shift.shape)}"
            )
        return shift * (1 - self.mask.to(x.dtype))

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if self.split_form():  # the same map, on x_T only
            kept, changed = self.conditioner.split(x)
            shift = self.conditioner(kept, context, kept_only=True)
            return self.conditioner.replace_transformed(x, changed + shift), x.new_zeros(len(x))
        return x + self.shift(x, context), x.new_zeros(x.shape[0])

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if self.split_form():  # the same map, on z_T only
            kept, changed = self.conditioner.split(z)
            shift = self.conditioner(kept, context, kept_only=True)
            return self.conditioner.replace_transformed(z, changed - shift), z.new_zeros(len(z))
        return z - self.shift(z, context), z.new_zeros(z.shape[0])
