"""Why flowcourse is not ahead, per (model, operation): written by a person, read by the report.

The numbers, and which cells need a sentence, come from ``benchmarks/results.json``;
only the explanations are typed here, from profiles of the cells made with
``benchmarks/profile_cell.py``. Keys are ``(model, operation)``; the MAF floor target uses
``("MAF", "floor")``. One or two sentences each. When the library changes or a new run
moves the numbers, profile again and update the reason: a stale reason is worse than
the placeholder ``report.sentence`` prints for a missing one.
"""

from __future__ import annotations

__all__ = ["REASONS"]

_ONE_RELU = (
    "The MADE of nflows and normflows applies no nonlinearity after its first masked layer (one "
    "ReLU per pass where flowcourse and zuko apply two, for the same parameter count), "
)
_CLAMP = (
    "the soft clamp of the log-scale, b tanh(s/b) (four elementwise operations on a "
    "(batch, D) tensor, computed through the sigmoid) "
)
_SPLIT = (
    "The couplings split their input once and work on the transformed half only, so "
    "flowcourse ties the fastest peer in most cells; "
)
_PYTHON = (
    "a few Python calls per layer (the checks at the door, the layer wrappers), which weigh "
    "most at small D"
)
_COUPLING = (
    _SPLIT + "what remains is " + _CLAMP + "where normflows exponentiates the raw output, "
    "and " + _PYTHON + "."
)
_NICE = _SPLIT + "NICE has no clamp, so what remains is " + _PYTHON + ", within the rerun spread."
_PER_PASS = (
    "one feature per pass from the two MADE outputs it needs; at small D the per-pass Python "
    "is what is left, within the rerun spread of about 5%."
)

REASONS: dict[tuple[str, str], str] = {
    ("MAF", "train_step"): (_ONE_RELU + "and flowcourse adds " + _CLAMP + "forward and backward."),
    ("MAF", "log_prob"): (
        _ONE_RELU + "and flowcourse adds " + _CLAMP + "(about 12% of a call at D = 32, "
        "width 64, batch 1024)."
    ),
    ("MAF", "sample"): "Sampling already solves " + _PER_PASS,
    ("MAF", "floor"): (
        "The floor has no masks, no clamp and no checks. At width 256 the matrix products "
        "dominate and the target is met; at width 64 the gap is mostly "
        + _CLAMP
        + "(about 12% of a call), then the three weight-times-mask products per layer and "
        "the Python of five layer calls. The clamp keeps training stable and the shipped "
        "checkpoints use it, so it stays; zuko's rational clamp is another model."
    ),
    ("RealNVP", "train_step"): _COUPLING,
    ("RealNVP", "log_prob"): _COUPLING,
    ("RealNVP", "sample"): _COUPLING,
    ("NICE", "train_step"): _NICE,
    ("NICE", "log_prob"): _NICE,
    ("NICE", "sample"): _NICE,
    ("IAF", "train_step"): (
        _ONE_RELU + "a saving a training step makes in each of its D passes, forward and "
        "backward. flowcourse's loop keeps the first hidden layer's pre-activation while "
        "training (one outer product per pass instead of copying the partial solution and "
        "multiplying it again), which leaves that one ReLU as the difference."
    ),
    ("IAF", "log_prob"): "Scoring already solves " + _PER_PASS,
}
