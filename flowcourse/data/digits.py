r"""The 8 x 8 handwritten digits of scikit-learn, as image tensors of integer grey levels.

scikit-learn ships the 1797 images of ``load_digits`` (the UCI optical digits test
set) inside the package, so nothing is downloaded. Each pixel is an integer grey
level :math:`k \in \{0, \dots, 16\}`: ``NUM_LEVELS = 17`` levels, the :math:`L` of
the dequantisation and bits-per-dimension formulas in
:mod:`flowcourse.preprocessing`. Taught in the chapter *RealNVP*.
"""

from __future__ import annotations

from functools import lru_cache

import torch
from torch import Tensor

__all__ = ["NUM_LEVELS", "IMAGE_SHAPE", "load_digits_tensors"]

#: Grey levels of a digit pixel (0 to 16).
NUM_LEVELS = 17
#: The shape ``(channels, height, width)`` of one digit image.
IMAGE_SHAPE = (1, 8, 8)


def load_digits_tensors(split: str = "train", seed: int = 0, test_fraction: float = 0.2) -> Tensor:
    r"""The digits as a float32 tensor of shape ``(N, 1, 8, 8)`` holding the levels 0..16.

    The split is fixed and documented: a permutation of the 1797 images drawn by
    ``torch.randperm`` from ``torch.Generator().manual_seed(seed)``; the first
    ``round(1797 * test_fraction)`` images of the permutation are the test set (359 with
    the defaults), the rest the training set (1438). The two splits never share an
    image, and the same ``seed`` always gives the same split.

    Args:
        split: ``"train"`` or ``"test"``.
        seed: seed of the permutation that defines the split.
        test_fraction: fraction of the images held out for testing, in (0, 1).

    Example:
        >>> from flowcourse.data import load_digits_tensors
        >>> train = load_digits_tensors("train")
        >>> train.shape, float(train.min()), float(train.max())
        (torch.Size([1438, 1, 8, 8]), 0.0, 16.0)
    """
    if split not in ("train", "test"):
        raise ValueError(f"expected split to be 'train' or 'test', got {split!r}")
    if isinstance(test_fraction, bool) or not isinstance(test_fraction, (int, float)):
        raise TypeError(f"expected test_fraction to be a float, got {type(test_fraction).__name__}")
    if not 0 < test_fraction < 1:
        raise ValueError(f"expected test_fraction in (0, 1), got {test_fraction}")
    images = _all_images()
    permutation = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))
    num_test = round(len(images) * test_fraction)
    indices = permutation[:num_test] if split == "test" else permutation[num_test:]
    return images[indices].contiguous()  # indexing copies: callers may modify the result


@lru_cache(maxsize=1)
def _all_images() -> Tensor:
    # Imported here: scikit-learn takes a second to import and only this function needs it.
    from sklearn.datasets import load_digits

    return torch.as_tensor(load_digits().images, dtype=torch.float32).unsqueeze(1)
