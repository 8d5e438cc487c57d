"""Train the MAF checkpoint of the chapter *MAF*: ``flowcourse/checkpoints/maf_digits.pt``.

The chapter (``book/maf.md``) loads this checkpoint instead of training for a few
minutes, and retrains the same model with the same recipe when ``FULL_SCALE`` is on.

Recipe: ``models.maf`` on the 64 pixels of scikit-learn's 8x8 digits, flattened to
vectors, fitted by maximum likelihood in logit space with fresh uniform dequantisation
noise for every batch (``preprocessing.DequantizeLogit``, alpha = 0.05, as in the
chapter *RealNVP*). The last ``VALIDATION_IMAGES`` images of the training split are held
out for early stopping (the best epoch's weights are kept); the test split is never seen
in training.

Deterministic (seeded, CPU, one thread); the shared recipe is in ``digits_checkpoint.py``.
Usage::

    .venv/bin/python scripts/train_maf_digits.py            # writes the checkpoint
    .venv/bin/python scripts/train_maf_digits.py --output /tmp/x.pt --epochs 5
"""

from __future__ import annotations

from digits_checkpoint import train_and_save

from flowcourse import models

MODEL = {"features": 64, "num_layers": 5, "hidden_features": 64, "num_hidden_layers": 1, "seed": 0}
TRAINING = {
    "epochs": 300,
    "batch_size": 64,
    "learning_rate": 1e-3,
    "patience": 20,
    "seed": 0,
}

if __name__ == "__main__":
    train_and_save(
        lambda: models.maf(**MODEL),
        TRAINING,
        "maf_digits",
        __doc__.splitlines()[0],
        flatten=True,
        progress=False,
    )
