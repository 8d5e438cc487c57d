"""Train the digits checkpoint of the chapter *RealNVP* (flowcourse/checkpoints/realnvp_digits.pt).

The chapter (``book/realnvp.md``) loads this checkpoint instead of training for several
minutes, and retrains the same model with the same recipe when ``FULL_SCALE`` is on.

Recipe: ``models.realnvp_image`` (two scales on 1x8x8, ConvNet conditioners) fitted by
maximum likelihood to scikit-learn's 8x8 digits in logit space, with fresh uniform
dequantisation noise for every batch (``preprocessing.DequantizeLogit``, alpha = 0.05).
The last ``VALIDATION_IMAGES`` images of the training split are held out for early
stopping (the best epoch's weights are kept); the test split is never seen in training.

Deterministic (seeded, CPU, one thread); the shared recipe is in ``digits_checkpoint.py``.
Usage::

    .venv/bin/python scripts/train_realnvp_digits.py            # writes the checkpoint
    .venv/bin/python scripts/train_realnvp_digits.py --output /tmp/x.pt --epochs 5
"""

from __future__ import annotations

from digits_checkpoint import train_and_save

from flowcourse import models
from flowcourse.data import IMAGE_SHAPE

MODEL = {
    "image_shape": list(IMAGE_SHAPE),
    "num_scales": 2,
    "hidden_channels": 64,
    "num_hidden_layers": 1,
    "seed": 0,
}
TRAINING = {
    "epochs": 200,
    "batch_size": 64,
    "learning_rate": 1e-3,
    "patience": 20,
    "seed": 0,
}

if __name__ == "__main__":
    train_and_save(
        lambda: models.realnvp_image(**MODEL), TRAINING, "realnvp_digits", __doc__.splitlines()[0]
    )
