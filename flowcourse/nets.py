"""Small neural networks used as conditioners inside couplings (vectors and images).

The last layer starts at zero by default, so a freshly built coupling is the
identity map: deep stacks then train stably from the first step (Glow, Sec. 3.3).
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn

__all__ = ["MLP", "ConvNet"]


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
        if min(in_features, out_features, hidden_features) < 1 or num_hidden_layers < 1:
            raise ValueError(
                "expected positive in_features, out_features, hidden_features and "
                f"num_hidden_layers, got {in_features}, {out_features}, {hidden_features}, "
                f"{num_hidden_layers}"
            )
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
        if min(in_channels, out_channels, hidden_channels) < 1 or num_hidden_layers < 1:
            raise ValueError(
                "expected positive in_channels, out_channels, hidden_channels and "
                f"num_hidden_layers, got {in_channels}, {out_channels}, {hidden_channels}, "
                f"{num_hidden_layers}"
            )
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
