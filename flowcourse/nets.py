"""Small neural networks used as conditioners inside couplings (vectors and images).

The last layer starts at zero by default, so a freshly built coupling is the
identity map: deep stacks then train stably from the first step (Glow, Sec. 3.3).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from flowcourse.validation import check_int, check_positive_int

__all__ = ["MLP", "ConvNet", "CouplingMLP"]


class MLP(nn.Sequential):
    """``Linear -> activation`` repeated ``num_hidden_layers`` times, then a ``Linear``.

    Example:
        >>> import torch
        >>> MLP(2, 4, hidden_features=16)(torch.zeros(3, 2)).shape
        torch.Size([3, 4])
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        hidden_features: int = 64,
        num_hidden_layers: int = 2,
        activation: Callable[[], nn.Module] = nn.ReLU,
        zero_init_last: bool = True,
    ) -> None:
        check_positive_int(in_features, "in_features")
        check_positive_int(out_features, "out_features")
        check_positive_int(hidden_features, "hidden_features")
        check_positive_int(num_hidden_layers, "num_hidden_layers")
        layers: list[nn.Module] = []
        width = in_features
        for _ in range(num_hidden_layers):
            layers += [nn.Linear(width, hidden_features), activation()]
            width = hidden_features
        last = nn.Linear(width, out_features)
        if zero_init_last:
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)
        layers.append(last)
        super().__init__(*layers)


class ConvNet(nn.Sequential):
    """A shallow CNN that keeps the spatial size: 3x3 conv, 1x1 conv(s), 3x3 conv.

    Example:
        >>> import torch
        >>> ConvNet(2, 4, hidden_channels=8)(torch.zeros(1, 2, 8, 8)).shape
        torch.Size([1, 4, 8, 8])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        hidden_channels: int = 64,
        num_hidden_layers: int = 1,
        activation: Callable[[], nn.Module] = nn.ReLU,
        zero_init_last: bool = True,
    ) -> None:
        check_positive_int(in_channels, "in_channels")
        check_positive_int(out_channels, "out_channels")
        check_positive_int(hidden_channels, "hidden_channels")
        check_positive_int(num_hidden_layers, "num_hidden_layers")
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, hidden_channels, 3, padding=1),
            activation(),
        ]
        for _ in range(num_hidden_layers):
            layers += [nn.Conv2d(hidden_channels, hidden_channels, 1), activation()]
        last = nn.Conv2d(hidden_channels, out_channels, 3, padding=1)
        if zero_init_last:
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)
        layers.append(last)
        super().__init__(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x)


class CouplingMLP(nn.Module):
    r"""A vector coupling's conditioner: an :class:`MLP` from the kept values to the others.

    For a mask :math:`m` with kept indices :math:`K` and transformed indices :math:`T`, the
    network reads only :math:`x_K` (and a context :math:`c`, if any) and predicts
    ``num_params`` values for each transformed index only,

    .. math::

        \text{out} = \operatorname{scatter}_T\big(\text{MLP}([x_K, c])\big),

    returned in the layout of the whole vector, ``(batch, num_params * D)`` (split by
    ``chunk(num_params, dim=1)``), with zeros at the kept positions. As a function of the
    whole vector it *is* the conditioner :math:`t(m \odot x)` of the chapters: gathering
    :math:`x_K` is multiplying by :math:`m` and dropping the zeros (an MLP on all of
    :math:`m \odot x` could only learn weights that multiply zeros), and predicting only
    :math:`T` is computing :math:`(1 - m) \odot t` without the outputs the mask discards.
    It has the parameters of the couplings of nflows, zuko and normflows: an MLP of
    :math:`|K| + C` inputs and ``num_params`` :math:`\times |T|` outputs. Taught in the
    chapters *NICE* and *RealNVP*.

    A coupling can also skip the whole-vector layout: :meth:`split` cuts :math:`x` into
    :math:`(x_K, x_T)`, :meth:`predict` returns the MLP's output for :math:`T` alone, and
    :meth:`replace_transformed` puts new values back at :math:`T`. When :math:`K` is one
    block of consecutive indices (:func:`~flowcourse.coupling.half_mask`), splitting is
    slicing and merging is concatenating. When :math:`T` is evenly spaced (every other
    feature, :func:`~flowcourse.coupling.alternating_mask`), merging writes the values
    into a strided slice of a copy of ``x``, about three times faster on a CPU than
    ``index_copy``; otherwise splitting and merging are ``index_select`` and
    ``index_copy``.

    Example:
        >>> import torch
        >>> mask = torch.tensor([True, False, True, False])
        >>> conditioner = CouplingMLP(mask, num_params=2, hidden_features=8)
        >>> conditioner[0].in_features, conditioner[-1].out_features  # 2 kept in, 2 x 2 out
        (2, 4)
        >>> conditioner(torch.randn(3, 4)).shape
        torch.Size([3, 8])
        >>> kept, transformed = conditioner.split(torch.tensor([[1.0, 2.0, 3.0, 4.0]]))
        >>> kept, transformed
        (tensor([[1., 3.]]), tensor([[2., 4.]]))
        >>> conditioner.replace_transformed(torch.tensor([[1.0, 2.0, 3.0, 4.0]]), -transformed)
        tensor([[ 1., -2.,  3., -4.]])
    """

    def __init__(
        self,
        mask: Tensor,
        num_params: int = 1,
        hidden_features: int = 64,
        num_hidden_layers: int = 2,
        context_features: int = 0,
    ) -> None:
        super().__init__()
        if not isinstance(mask, Tensor) or mask.dtype != torch.bool or mask.dim() != 1:
            raise TypeError(f"expected mask to be a 1-D bool tensor, got {mask!r}")
        self.num_params = check_positive_int(num_params, "num_params")
        self.context_features = check_int(context_features, "context_features", 0)
        self.register_buffer("kept", mask.nonzero().flatten())
        self.register_buffer("transformed", (~mask).nonzero().flatten())
        self.features = mask.numel()
        self.net = MLP(
            len(self.kept) + context_features,
            num_params * len(self.transformed),
            hidden_features,
            num_hidden_layers,
        )
        self._find_blocks()
        # Loading a state dict may bring other indices: find their blocks again.
        self.register_load_state_dict_post_hook(_find_blocks_after_load)

    def _find_blocks(self) -> None:
        """Set ``self.blocks`` to the slices ``(kept, transformed)`` if the kept indices
        are one block at the start or at the end of the vector, else to ``None``; and
        ``self.transformed_slice`` to the transformed indices as a slice if they are
        evenly spaced, else to ``None``."""
        kept, features = self.kept.tolist(), self.features
        k = len(kept)
        self.blocks: tuple[slice, slice] | None = None
        if kept == list(range(k)):  # x = [x_K, x_T]
            self.blocks = (slice(0, k), slice(k, features))
        elif kept == list(range(features - k, features)):  # x = [x_T, x_K]
            self.blocks = (slice(features - k, features), slice(0, features - k))
        self.transformed_slice = _as_slice(self.transformed.tolist())

    def __getitem__(self, index: int) -> nn.Module:
        return self.net[index]

    def split(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The kept values :math:`x_K` and the transformed ones :math:`x_T` of ``x``,
        each ``(batch, |K|)`` and ``(batch, |T|)`` in index order."""
        if self.blocks is None:
            return x.index_select(1, self.kept), x.index_select(1, self.transformed)
        kept, transformed = self.blocks
        return x[:, kept], x[:, transformed]

    def replace_transformed(self, x: Tensor, values: Tensor) -> Tensor:
        """A new tensor: ``x`` with its transformed values :math:`x_T` replaced by
        ``values`` (``(batch, |T|)``); the kept values are ``x``'s."""
        if self.blocks is None:
            if self.transformed_slice is None:
                return x.index_copy(1, self.transformed, values)
            merged = x.clone()
            merged[:, self.transformed_slice] = values
            return merged
        kept = x[:, self.blocks[0]]
        parts = [kept, values] if self.blocks[0].start == 0 else [values, kept]
        return torch.cat(parts, dim=1)

    def predict(self, kept: Tensor, context: Tensor | None = None) -> Tensor:
        """The MLP on the kept values (and the context): ``(batch, num_params * |T|)``,
        parameter-major, so ``chunk(num_params, dim=1)`` gives one ``(batch, |T|)`` each."""
        return self.net(kept if context is None else torch.cat([kept, context], dim=1))

    def forward(
        self, x: Tensor, context: Tensor | None = None, *, kept_only: bool = False
    ) -> Tensor:
        """The parameters at full width, zero at the kept indices: ``(batch, num_params * D)``.

        With ``kept_only=True``, ``x`` is already :math:`x_K` and the result is
        :meth:`predict`'s (the couplings' fast form calls it so, through the module, so
        that forward hooks on the conditioner still see every pass).
        """
        if kept_only:
            return self.predict(x, context)
        params = self.predict(self.split(x)[0], context)
        params = params.reshape(len(x), self.num_params, len(self.transformed))
        out = x.new_zeros(len(x), self.num_params, self.features)
        return out.index_copy(2, self.transformed, params).reshape(len(x), -1)


def _find_blocks_after_load(module: CouplingMLP, incompatible_keys: object) -> None:
    module._find_blocks()


def _as_slice(indices: list[int]) -> slice | None:
    """``indices`` as a ``slice`` if they are evenly spaced and increasing, else ``None``."""
    if not indices:
        return None
    step = indices[1] - indices[0] if len(indices) > 1 else 1
    if step > 0 and indices == list(range(indices[0], indices[-1] + 1, step)):
        return slice(indices[0], indices[-1] + 1, step)
    return None
