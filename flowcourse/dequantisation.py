r"""Dequantisation as a choice: uniform noise, or a learned noise distribution :math:`q(u \mid k)`.

A flow gives a density :math:`p_X` to continuous :math:`x`; an image is a vector of integer
levels :math:`k \in \{0, \dots, L-1\}^D`. The model of the image is the mass of its unit cube,
:math:`P(k) = \int_{[0,1)^D} p_X(k + u)\, du`. For *any* density :math:`q(u \mid k)` on the
cube, Jensen's inequality gives the *variational* bound (Ho et al. 2019, Flow++)

.. math::

    \log P(k) = \log \mathbb{E}_{u \sim q}\!\left[\frac{p_X(k + u)}{q(u \mid k)}\right]
    \;\ge\; \mathbb{E}_{u \sim q}\big[\log p_X(k + u) - \log q(u \mid k)\big],

and the gap is :math:`\mathrm{KL}\big(q(u \mid k) \,\|\, p_X(k + u)/P(k)\big) \ge 0`.
Uniform dequantisation (Theis et al. 2016) is the special case :math:`q = U[0, 1)^D`,
:math:`\log q = 0` (:class:`UniformDequantizer`); a learned :math:`q` that follows the
model's own :math:`p_X(k + u)/P(k)` closes the gap (:class:`VariationalDequantizer`).
With the data scaled to :math:`y = (k + u)/L`, :math:`\log p_X(k + u) = \log p_Y(y) - D \log L`;
the densities here are always of :math:`u`, on cubes of side one, so that term is the same
for both bounds.

The preprocessing that feeds a flow in logit space with these samples is
:class:`flowcourse.preprocessing.VariationalDequantizeLogit`. Taught in the chapter
*RealNVP* (section *Variational dequantisation*).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from flowcourse.coupling.affine import AffineCoupling
from flowcourse.coupling.masks import checkerboard_mask
from flowcourse.nets import ConvNet
from flowcourse.seeding import seeded
from flowcourse.validation import (
    check_image,
    check_int,
    check_matches_module,
    check_positive_float,
    check_tensor,
    inside,
)

__all__ = [
    "check_num_levels",
    "check_levels",
    "UniformDequantizer",
    "ConditionalAffineCoupling",
    "VariationalDequantizer",
    "FlowWithDequantizer",
]


def check_num_levels(num_levels: object) -> int:
    """Check that ``num_levels`` (:math:`L`, the number of grey levels) is an int >= 2."""
    if isinstance(num_levels, bool) or not isinstance(num_levels, int) or num_levels < 2:
        raise ValueError(f"expected num_levels to be an int >= 2, got {num_levels!r}")
    return num_levels


def check_levels(
    levels: object,
    num_levels: int,
    name: str = "levels",
    event_shape: Sequence[int] | None = None,
    dtype: torch.dtype | None = None,
) -> Tensor:
    r"""Check integer levels :math:`k \in \{0, \dots, L-1\}` and return them as floats.

    Integer tensors are converted to ``dtype`` (default: torch's default dtype); floating
    tensors must hold whole numbers. With ``event_shape`` the shape must be
    ``(batch, *event_shape)``. Raises ``TypeError`` for a non-tensor and ``ValueError`` for
    a wrong shape, a non-finite value, a fraction or a level out of range.

    Example:
        >>> check_levels(torch.tensor([[0, 16]]), num_levels=17)
        tensor([[ 0., 16.]])
    """
    num_levels = check_num_levels(num_levels)
    if not isinstance(levels, Tensor):
        raise TypeError(f"expected {name} to be a torch.Tensor, got {type(levels).__name__}")
    if not levels.is_floating_point():
        levels = levels.to(dtype or torch.get_default_dtype())
    levels = check_tensor(levels, name)
    if event_shape is not None and tuple(levels.shape[1:]) != tuple(event_shape):
        expected = ", ".join(map(str, event_shape))
        raise ValueError(f"expected {name} of shape (batch, {expected}), got {tuple(levels.shape)}")
    if levels.numel():
        whole = bool((levels == levels.round()).all())
        low, high = float(levels.min()), float(levels.max())
        if not whole or low < 0 or high > num_levels - 1:
            raise ValueError(
                f"expected {name} to be integers in [0, {num_levels - 1}], got values in "
                f"[{low:g}, {high:g}]" + ("" if whole else " that are not all integers")
            )
    return levels


def _logistic_log_prob(eps: Tensor) -> Tensor:
    r""":math:`\sum_i \log \sigma(\epsilon_i) + \log \sigma(-\epsilon_i)`, the standard logistic."""
    return (-F.softplus(-eps) - F.softplus(eps)).flatten(1).sum(dim=1)


class UniformDequantizer(nn.Module):
    r"""Uniform dequantisation as a dequantiser: :math:`q(u \mid k) = 1` on :math:`[0, 1)^D`.

    ``sample_and_log_prob(levels, generator)`` returns :math:`u \sim U[0, 1)` of the shape of
    ``levels`` and :math:`\log q(u \mid k) = 0`. It draws exactly the noise of
    :func:`flowcourse.preprocessing.dequantize` from the same generator, so the bound it
    gives is the uniform bound of the chapter *RealNVP* (Theis et al. 2016), bit for bit.

    Example:
        >>> u, log_q = UniformDequantizer(17).sample_and_log_prob(torch.zeros(2, 1, 8, 8))
        >>> u.shape, log_q
        (torch.Size([2, 1, 8, 8]), tensor([0., 0.]))
    """

    def __init__(self, num_levels: int) -> None:
        super().__init__()
        self.num_levels = check_num_levels(num_levels)

    def sample_and_log_prob(
        self, levels: Tensor, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        r"""Draw :math:`u` (the shape of ``levels``) and :math:`\log q(u \mid k) = 0`."""
        levels = check_levels(levels, self.num_levels)
        if levels.dim() < 2:
            raise ValueError(f"expected levels of shape (batch, ...), got {tuple(levels.shape)}")
        u = torch.rand(levels.shape, generator=generator, dtype=levels.dtype, device=levels.device)
        return u, u.new_zeros(len(u))

    def log_prob(self, u: Tensor, levels: Tensor) -> Tensor:
        r""":math:`\log q(u \mid k) = 0` for :math:`u \in [0, 1)^D`; ``ValueError`` outside."""
        levels = check_levels(levels, self.num_levels)
        u = check_tensor(u, "u")
        if u.shape != levels.shape:
            raise ValueError(f"expected u of shape {tuple(levels.shape)}, got {tuple(u.shape)}")
        low, high = (float(u.detach().min()), float(u.detach().max())) if u.numel() else (0, 0)
        if low < 0 or high >= 1:
            raise ValueError(f"expected u in [0, 1), got values in [{low:g}, {high:g}]")
        return u.new_zeros(len(u))

    def extra_repr(self) -> str:
        return f"num_levels={self.num_levels}"


class _ContextConvNet(ConvNet):
    """A :class:`~flowcourse.nets.ConvNet` that reads its input and a context image, stacked
    along the channels (a subclass, so the parameters keep the ConvNet's names)."""

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        return super().forward(torch.cat([x, context], 1))


class ConditionalAffineCoupling(AffineCoupling):
    r"""An affine coupling on images whose conditioner also reads a context image.

    With a mask :math:`m` (1 = kept) and a context :math:`c` (here: the integer image),

    .. math::

        (t, \tilde s) = \mathrm{NN}\big([\, m \odot x,\; c \,]\big), \qquad
        s = b \tanh(\tilde s / b), \qquad
        z = m \odot x + (1 - m) \odot \big(x \odot e^{s} + t\big),

    so :math:`\log|\det \partial z/\partial x| = \sum_i (1 - m_i) s_i`: it *is*
    :class:`~flowcourse.coupling.AffineCoupling` (Dinh et al. 2017) with a
    :class:`~flowcourse.nets.ConvNet` conditioner that also reads :math:`c`; the context
    enters only the conditioner, which is never inverted. ``forward(x, context)`` maps data
    to noise, ``inverse(z, context)`` back; both need the context, of shape
    ``(batch, context_channels, height, width)``. A fresh layer is the identity.

    Example:
        >>> layer = ConditionalAffineCoupling(checkerboard_mask(4, 4), channels=1,
        ...                                   context_channels=1, hidden_channels=8)
        >>> x, context = torch.randn(3, 1, 4, 4), torch.randn(3, 1, 4, 4)
        >>> z, log_abs_det = layer(x, context)
        >>> torch.equal(z, x), log_abs_det.tolist()  # the identity until trained
        (True, [0.0, 0.0, 0.0])
    """

    def __init__(
        self,
        mask: Tensor,
        channels: int,
        context_channels: int,
        hidden_channels: int = 32,
        num_hidden_layers: int = 1,
        log_scale_bound: float = 3.0,
    ) -> None:
        check_int(channels, "channels", 1)
        check_int(context_channels, "context_channels", 1)
        if not isinstance(mask, Tensor) or mask.dtype != torch.bool or mask.dim() != 3:
            got = tuple(mask.shape) if isinstance(mask, Tensor) else type(mask).__name__
            raise TypeError(f"expected a bool image mask of shape (1, height, width), got {got}")
        bound = check_positive_float(log_scale_bound, "log_scale_bound")
        conditioner = _ContextConvNet(
            channels + context_channels, 2 * channels, hidden_channels, num_hidden_layers
        )
        super().__init__(mask, conditioner, bound, in_channels=channels)
        self.channels, self.context_channels = channels, context_channels

    def check_input(self, x: object, inverse: bool = False, context: Tensor | None = None) -> None:
        """``x`` of shape ``(batch, channels, height, width)`` and a context of shape
        ``(batch, context_channels, height, width)``, both with the layer's dtype and device."""
        name = "z" if inverse else "x"
        height, width = self.mask.shape[1:]
        x = check_matches_module(check_image(x, self.channels, name, (height, width)), self, name)
        if context is None:
            raise ValueError(
                f"expected a context of shape (batch, {self.context_channels}, {height}, "
                f"{width}) for this conditional coupling, got None"
            )
        context = check_matches_module(check_tensor(context, "context"), self, "context")
        expected = (len(x), self.context_channels, height, width)
        if tuple(context.shape) != expected:
            raise ValueError(f"expected context of shape {expected}, got {tuple(context.shape)}")

    def extra_repr(self) -> str:
        return (
            f"mask_shape={tuple(self.mask.shape)}, channels={self.channels}, "
            f"context_channels={self.context_channels}, log_scale_bound={self.log_scale_bound}"
        )


class VariationalDequantizer(nn.Module):
    r"""A learned dequantiser :math:`q(u \mid k)`: a conditional flow on :math:`(0, 1)^D`.

    Sampling (noise to data) draws logistic noise, transforms it with checkerboard
    couplings whose conditioners read the integer image :math:`k`, and squashes it:

    .. math::

        \epsilon \sim \mathrm{Logistic}(0, 1)^D, \qquad
        h = g_k^{-1}(\epsilon), \qquad u = \sigma(h), \\
        \log q(u \mid k) = \log p_\epsilon(\epsilon)
        - \log\left|\det \frac{\partial h}{\partial \epsilon}\right|
        - \sum_{i=1}^{D} \log \sigma'(h_i), \qquad \sigma'(h) = \sigma(h)\,\sigma(-h).

    The couplings start as the identity and :math:`\sigma(\epsilon)` of logistic noise is
    uniform, so a fresh dequantiser *is* uniform dequantisation (:math:`\log q = 0`):
    training starts from the uniform bound. Following the course's
    convention, ``forward(u, levels)`` maps data :math:`u` to noise :math:`\epsilon` and
    ``inverse(eps, levels)`` back, each with its log-determinant. A small version of the
    dequantiser of Flow++ (Ho et al. 2019); taught in the chapter *RealNVP*.

    Arguments:
        image_shape: ``(channels, height, width)`` of the images (at least two pixels).
        num_levels: :math:`L`; levels are integers in ``[0, L - 1]``.
        num_couplings: couplings with alternating checkerboard masks.
        hidden_channels, num_hidden_layers, log_scale_bound: of each coupling.
        seed: fixes the initial weights without touching the global random state.

    Example:
        >>> q = VariationalDequantizer((1, 8, 8), num_levels=17, hidden_channels=8)
        >>> levels = torch.randint(0, 17, (2, 1, 8, 8))
        >>> u, log_q = q.sample_and_log_prob(levels)
        >>> bool(((0 < u) & (u < 1)).all()), log_q.tolist()  # fresh: uniform dequantisation
        (True, [0.0, 0.0])
    """

    def __init__(
        self,
        image_shape: Sequence[int] = (1, 8, 8),
        num_levels: int = 17,
        num_couplings: int = 4,
        hidden_channels: int = 32,
        num_hidden_layers: int = 1,
        log_scale_bound: float = 3.0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        valid = isinstance(image_shape, Sequence) and len(image_shape) == 3
        valid = valid and all(isinstance(s, int) and not isinstance(s, bool) for s in image_shape)
        if not valid or min(image_shape) < 1:
            raise ValueError(
                f"expected image_shape (channels, height, width) of positive ints, "
                f"got {image_shape!r}"
            )
        check_int(num_couplings, "num_couplings", 2, "each checkerboard changes half the pixels")
        check_int(seed, "seed")
        self.image_shape = tuple(image_shape)
        self.num_levels = check_num_levels(num_levels)
        channels, height, width = self.image_shape
        with seeded(seed):
            self.couplings = nn.ModuleList(
                ConditionalAffineCoupling(
                    checkerboard_mask(height, width, parity=i % 2),
                    channels,
                    context_channels=channels,
                    hidden_channels=hidden_channels,
                    num_hidden_layers=num_hidden_layers,
                    log_scale_bound=log_scale_bound,
                )
                for i in range(num_couplings)
            )

    def _context(self, levels: object) -> Tensor:
        """Check the levels and scale them to :math:`[-1, 1]` for the conditioners."""
        reference = next(self.parameters())
        levels = check_levels(
            levels, self.num_levels, event_shape=self.image_shape, dtype=reference.dtype
        )
        levels = check_matches_module(levels, self, "levels")
        return 2 * levels / (self.num_levels - 1) - 1

    def forward(self, u: Tensor, levels: Tensor) -> tuple[Tensor, Tensor]:
        r"""Data to noise: :math:`\epsilon = g_k(\operatorname{logit} u)` and
        :math:`\log|\det \partial \epsilon / \partial u|`; ``u`` must lie in :math:`(0, 1)`."""
        context = self._context(levels)
        u = check_tensor(u, "u")
        if u.shape != context.shape:
            raise ValueError(f"expected u of shape {tuple(context.shape)}, got {tuple(u.shape)}")
        low, high = (float(u.detach().min()), float(u.detach().max())) if u.numel() else (0.5, 0.5)
        if low <= 0 or high >= 1:
            raise ValueError(f"expected u in (0, 1), got values in [{low:g}, {high:g}]")
        h = torch.log(u) - torch.log1p(-u)
        total = -(torch.log(u) + torch.log1p(-u)).flatten(1).sum(dim=1)  # log dh/du
        with inside():  # checked once here: the couplings trust their input
            for coupling in self.couplings:
                h, log_abs_det = coupling(h, context)
                total = total + log_abs_det
        return h, total

    def inverse(self, eps: Tensor, levels: Tensor) -> tuple[Tensor, Tensor]:
        r"""Noise to data: :math:`u = \sigma(g_k^{-1}(\epsilon))` and
        :math:`\log|\det \partial u / \partial \epsilon|`."""
        context = self._context(levels)
        eps = check_tensor(eps, "eps")
        if eps.shape != context.shape:
            raise ValueError(
                f"expected eps of shape {tuple(context.shape)}, got {tuple(eps.shape)}"
            )
        return self._inverse(eps, context)

    def _inverse(self, h: Tensor, context: Tensor) -> tuple[Tensor, Tensor]:
        total = h.new_zeros(len(h))
        with inside():
            for coupling in reversed(self.couplings):
                h, log_abs_det = coupling.inverse(h, context)
                total = total + log_abs_det
        # log sigma'(h) = log sigma(h) + log sigma(-h), stable for large |h|
        total = total - (F.softplus(-h) + F.softplus(h)).flatten(1).sum(dim=1)
        # sigma(h) rounds to exactly 0 or 1 beyond |h| = 17 (float32) or 37 (float64);
        # keep u strictly inside the cube (the change is below the rounding error).
        finfo = torch.finfo(h.dtype)
        return torch.sigmoid(h).clamp(finfo.tiny, 1 - finfo.eps / 2), total

    def log_prob(self, u: Tensor, levels: Tensor) -> Tensor:
        r""":math:`\log q(u \mid k)` in nats, shape ``(batch,)``, for ``u`` in :math:`(0, 1)`."""
        eps, log_abs_det = self.forward(u, levels)
        return _logistic_log_prob(eps) + log_abs_det

    def sample_and_log_prob(
        self, levels: Tensor, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        r"""Draw :math:`u \sim q(\cdot \mid k)` and return ``(u, log_q)`` in one pass.

        ``u`` has the shape of ``levels`` and lies in :math:`(0, 1)`; ``log_q`` has shape
        ``(batch,)``; both are differentiable with respect to the parameters
        (reparametrisation). The logistic noise is
        :math:`\epsilon = \operatorname{logit}(v)`, :math:`v \sim U(0, 1)` from ``generator``.
        """
        context = self._context(levels)
        v = torch.rand(
            context.shape, generator=generator, dtype=context.dtype, device=context.device
        )
        v = v.clamp_min(torch.finfo(v.dtype).tiny)  # rand can return 0: logit(0) = -inf
        eps = torch.log(v) - torch.log1p(-v)
        u, log_abs_det = self._inverse(eps, context)
        return u, _logistic_log_prob(eps) - log_abs_det

    def extra_repr(self) -> str:
        return f"image_shape={self.image_shape}, num_levels={self.num_levels}"


class FlowWithDequantizer(nn.Module):
    r"""A flow and the dequantiser that feeds it, as one module, so that one optimiser trains both.

    :func:`flowcourse.training.fit` optimises the parameters of the module it is given;
    pass it this pair together with
    ``preprocess=VariationalDequantizeLogit(dequantizer)`` and it maximises the variational
    bound :math:`\mathbb{E}_q[\log p(k + u) - \log q(u \mid k)]` over both the flow and
    :math:`q` (Ho et al. 2019). ``log_prob`` is the flow's; the preprocessing adds
    :math:`-\log q`. Early stopping restores both; save them separately
    (``flowcourse.io.save(pair.flow, ...)``, ``...(pair.dequantizer, ...)``).

    Example:
        >>> from flowcourse.core import Compose, Flow, StandardNormal
        >>> pair = FlowWithDequantizer(Flow(Compose(), StandardNormal((1, 2, 2))),
        ...                            VariationalDequantizer((1, 2, 2), hidden_channels=4))
        >>> pair.log_prob(torch.zeros(3, 1, 2, 2)).shape
        torch.Size([3])
    """

    def __init__(self, flow: nn.Module, dequantizer: nn.Module) -> None:
        super().__init__()
        if not isinstance(flow, nn.Module) or not hasattr(flow, "log_prob"):
            raise TypeError(f"expected flow to be a Flow, got {type(flow).__name__}")
        if not isinstance(dequantizer, nn.Module) or not hasattr(
            dequantizer, "sample_and_log_prob"
        ):
            kind = type(dequantizer).__name__
            raise TypeError(f"expected dequantizer to be a VariationalDequantizer, got {kind}")
        self.flow = flow
        self.dequantizer = dequantizer

    def log_prob(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        """The flow's log-density of ``x`` (logit space), in nats."""
        return self.flow.log_prob(x) if context is None else self.flow.log_prob(x, context)
