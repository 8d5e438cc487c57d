"""Train the class-conditional MAF of the chapter *MAF*: ``maf_digits_conditional.pt``.

The chapter (``book/maf.md``, section on the conditional MAF) loads this checkpoint and
retrains the same model with the same recipe when ``FULL_SCALE`` is on.

Model: ``models.maf`` with the architecture of ``train_maf_digits.py`` and
``context_features=10``; the context of an image is its one-hot label
(``flowcourse.data.load_digits_labels``), which every MADE reads in its first layer. The
flow models :math:`p(x \\mid y)`, the density of the images of the digit :math:`y`.

Recipe: exactly that of ``train_maf_digits.py`` (the shared ``digits_checkpoint.py``):
the 64 pixels flattened to vectors, maximum likelihood in logit space with fresh uniform
dequantisation noise for every batch (alpha = 0.05), early stopping on the last
``VALIDATION_IMAGES`` training images (with their labels); the test split is never seen
in training. The test bits/dim it prints is that of the test images given their true
labels.

Deterministic (seeded, CPU, one thread). Usage::

    .venv/bin/python scripts/train_conditional_maf_digits.py     # writes the checkpoint
    .venv/bin/python scripts/train_conditional_maf_digits.py --output /tmp/x.pt --epochs 5
"""

from __future__ import annotations

import torch
from digits_checkpoint import train_and_save
from torch.nn import functional as F
from train_maf_digits import MODEL as UNCONDITIONAL_MODEL
from train_maf_digits import TRAINING

from flowcourse import models
from flowcourse.data import NUM_CLASSES, load_digits_labels

# The unconditional MAF's architecture and recipe, by construction, plus the label.
MODEL = {**UNCONDITIONAL_MODEL, "context_features": NUM_CLASSES}


def one_hot_labels(split: str) -> torch.Tensor:
    """The context of the images of ``split``: one-hot labels, float32 ``(N, 10)``."""
    return F.one_hot(load_digits_labels(split), NUM_CLASSES).float()


if __name__ == "__main__":
    train_and_save(
        lambda: models.maf(**MODEL),
        TRAINING,
        "maf_digits_conditional",
        __doc__.splitlines()[0],
        flatten=True,
        progress=False,
        context=one_hot_labels,
    )
