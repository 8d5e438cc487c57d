r"""The 8 x 8 handwritten digits of scikit-learn, as image tensors of integer grey levels.

scikit-learn ships the 1797 images of ``load_digits`` (the UCI optical digits test
set) inside the package, so nothing is downloaded. Each pixel is an integer grey
level :math:`k \in \{0, \dots, 16\}`: ``NUM_LEVELS = 17`` levels, the :math:`L` of
the dequantisation and bits-per-dimension formulas in
:mod:`flowcourse.preprocessing`. Each image shows one of the ten digits 0 to 9: its
label, from :func:`load_digits_labels`, is the context of the class-conditional MAF.
Taught in the chapters *RealNVP* and *MAF*.
"""

from __future__ import annotations

from functools import lru_cache

import torch
from torch import Tensor

__all__ = ["NUM_LEVELS", "IMAGE_SHAPE", "NUM_CLASSES", "load_digits_tensors", "load_digits_labels"]

#: Grey levels of a digit pixel (0 to 16).
NUM_LEVELS = 17
#: The shape ``(channels, height, width)`` of one digit image.
IMAGE_SHAPE = (1, 8, 8)
#: Number of classes of the labels (the digits 0 to 9).
NUM_CLASSES = 10


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
    indices = _split_indices(split, seed, test_fraction)
    return _all_images()[indices].contiguous()  # indexing copies: callers may modify it


def load_digits_labels(split: str = "train", seed: int = 0, test_fraction: float = 0.2) -> Tensor:
    r"""The digit shown by each image of :func:`load_digits_tensors`: int64, shape ``(N,)``.

    Same arguments, same permutation: ``load_digits_labels(split, seed, test_fraction)[n]``
    is the label (0 to 9) of ``load_digits_tensors(split, seed, test_fraction)[n]``. For a
    class-conditional flow :math:`p(x \mid y)` the context is the one-hot label,
    ``torch.nn.functional.one_hot(labels, NUM_CLASSES).float()``.

    Args:
        split: ``"train"`` or ``"test"``.
        seed: seed of the permutation that defines the split.
        test_fraction: fraction of the images held out for testing, in (0, 1).

    Example:
        >>> from flowcourse.data import load_digits_labels
        >>> labels = load_digits_labels("test")
        >>> labels.shape, labels.dtype, torch.bincount(labels).sum().item()
        (torch.Size([359]), torch.int64, 359)
    """
    indices = _split_indices(split, seed, test_fraction)
    return _all_labels()[indices].contiguous()


def _split_indices(split: str, seed: int, test_fraction: float) -> Tensor:
    """Indices into the 1797 images of the ``split``, in the permutation's order."""
    if split not in ("train", "test"):
        raise ValueError(f"expected split to be 'train' or 'test', got {split!r}")
    if isinstance(test_fraction, bool) or not isinstance(test_fraction, (int, float)):
        raise TypeError(f"expected test_fraction to be a float, got {type(test_fraction).__name__}")
    if not 0 < test_fraction < 1:
        raise ValueError(f"expected test_fraction in (0, 1), got {test_fraction}")
    count = len(_all_labels())
    permutation = torch.randperm(count, generator=torch.Generator().manual_seed(seed))
    num_test = round(count * test_fraction)
    return permutation[:num_test] if split == "test" else permutation[num_test:]


def _all_images() -> Tensor:
    return _sklearn_digits()[0]


def _all_labels() -> Tensor:
    return _sklearn_digits()[1]


@lru_cache(maxsize=1)
def _sklearn_digits() -> tuple[Tensor, Tensor]:
    """All 1797 images ``(N, 1, 8, 8)`` float32 and their labels ``(N,)`` int64, in order."""
    # Imported here: scikit-learn takes a second to import and only this function needs it.
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = torch.as_tensor(digits.images, dtype=torch.float32).unsqueeze(1)
    return images, torch.as_tensor(digits.target, dtype=torch.int64)
