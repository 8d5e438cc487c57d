r"""Fixed permutations of the features (vectors) or channels (images).

Between couplings or autoregressive layers, a permutation changes which values
condition which, so that every value is eventually transformed. A permutation only
moves values: its Jacobian is a permutation matrix and
:math:`\log|\det \partial z/\partial x| = 0`. Taught in the chapters *NICE* and *MAF*.
"""

from __future__ import annotations

import torch
from torch import Tensor

from flowcourse.core import Transform
from flowcourse.validation import check_int, check_positive_int, check_tensor

__all__ = ["Permutation", "ReversePermutation", "RandomPermutation"]


class Permutation(Transform):
    r"""Reorder dim 1 by a fixed permutation :math:`\pi`: :math:`z_i = x_{\pi(i)}`.

    Works on vectors ``(B, D)`` (features) and images ``(B, C, H, W)`` (channels). The
    indices and their inverse are registered buffers, so they survive ``state_dict``
    round trips and move with ``.to(device)``. It reorders with ``index_select``, the
    same values as ``x[:, permutation]`` but several times faster on a CPU (also in the
    backward pass).

    Arguments:
        permutation: a 1-D integer tensor holding each of ``0, ..., D-1`` once.

    Example:
        >>> import torch
        >>> permutation = Permutation(torch.tensor([2, 0, 1]))
        >>> z, log_abs_det = permutation(torch.tensor([[10.0, 20.0, 30.0]]))
        >>> z
        tensor([[30., 10., 20.]])
    """

    def __init__(self, permutation: Tensor) -> None:
        super().__init__()
        if not isinstance(permutation, Tensor) or permutation.is_floating_point():
            kind = permutation.dtype if isinstance(permutation, Tensor) else type(permutation)
            raise TypeError(f"expected permutation to be an integer tensor, got {kind}")
        permutation = permutation.long()
        size = permutation.numel()
        is_permutation = permutation.dim() == 1 and size > 0
        is_permutation = is_permutation and bool(
            (permutation.sort().values == torch.arange(size, device=permutation.device)).all()
        )
        if not is_permutation:
            raise ValueError(
                f"expected permutation to hold each of 0, ..., D-1 exactly once, "
                f"got {permutation.tolist()}"
            )
        self.register_buffer("permutation", permutation.clone())
        self.register_buffer("inverse_permutation", torch.argsort(permutation))

    @property
    def num_features(self) -> int:
        return self.permutation.numel()

    def check_input(self, x: object, inverse: bool = False, context: Tensor | None = None) -> None:
        name = "z" if inverse else "x"
        x = check_tensor(x, name)
        d = self.num_features
        if x.dim() not in (2, 4) or x.shape[1] != d:
            raise ValueError(
                f"expected {name} of shape (batch, {d}) or (batch, {d}, height, width), "
                f"got {tuple(x.shape)}"
            )
        if x.device != self.permutation.device:
            raise ValueError(
                f"expected {name} on device {self.permutation.device} (where the "
                f"permutation lives), got {x.device}"
            )

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return x.index_select(1, self.permutation), x.new_zeros(x.shape[0])

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return z.index_select(1, self.inverse_permutation), z.new_zeros(z.shape[0])

    def extra_repr(self) -> str:
        return f"num_features={self.num_features}"


class ReversePermutation(Permutation):
    r"""Reverse the order of the features or channels: :math:`z_i = x_{D-1-i}`.

    Between two couplings with the same half mask it swaps the roles of the halves;
    between MAF layers it reverses the autoregressive order (Papamakarios et al. 2017).
    Taught in the chapters *NICE* and *MAF*.

    Example:
        >>> import torch
        >>> ReversePermutation(3)(torch.tensor([[1.0, 2.0, 3.0]]))[0]
        tensor([[3., 2., 1.]])
    """

    def __init__(self, num_features: int) -> None:
        super().__init__(torch.arange(check_positive_int(num_features, "num_features") - 1, -1, -1))

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return x.flip(1), x.new_zeros(x.shape[0])  # the reversal is its own inverse

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return z.flip(1), z.new_zeros(z.shape[0])


class RandomPermutation(Permutation):
    r"""A fixed random shuffle of the features or channels, drawn once from ``seed``.

    :math:`z_i = x_{\pi(i)}` with :math:`\pi` drawn uniformly by a private generator,
    so the global random state is untouched and the same seed gives the same
    permutation on every machine. Taught in the chapters *NICE* and *MAF*.

    Example:
        >>> import torch
        >>> RandomPermutation(4, seed=0).permutation.sort().values
        tensor([0, 1, 2, 3])
    """

    def __init__(self, num_features: int, seed: int = 0) -> None:
        generator = torch.Generator().manual_seed(check_int(seed, "seed"))
        super().__init__(
            torch.randperm(check_positive_int(num_features, "num_features"), generator=generator)
        )
        self.seed = seed
