r"""Graded questions of the chapter *Glow: ActNorm, invertible 1x1 convolutions*.

- ``glow.lu_conv1x1`` (exercise ``glow-ex-lu-log-det``): the LU-factorised 1x1
  convolution :math:`W = P L (U + \operatorname{diag}(\operatorname{sign} \odot e^{\log|s|}))`,
  its :math:`O(c)` log-determinant :math:`h w \sum_k \log|s_k|` and its inverse.
- ``glow.permutation_matrix`` (exercise ``glow-ex-permutation``, part 1): the matrix
  :math:`P_\pi` whose 1x1 convolution is the shuffle :math:`z_k = x_{\pi(k)}`.
- ``glow.batchnorm_log_det`` (exercise ``glow-ex-batchnorm``, part 1): the
  log-determinant :math:`-h w \sum_k \log \sigma_{B,k}` of batch normalisation.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from flowcourse.exercises.question import (
    Question,
    Result,
    attempt,
    compare,
    diagnostic,
)
from flowcourse.exercises.transforms import judge_transform, respond_layer
from flowcourse.glow import LUInvertible1x1Conv

__all__ = ["QUESTIONS", "SELF_ASSESSED"]

_LU_NAMES = ("lower", "upper", "log_abs_s", "permutation", "sign_s")


def _randint(generator: torch.Generator, low: int, high: int) -> int:
    """An integer in ``[low, high]`` (both included)."""
    return int(torch.randint(low, high + 1, (1,), generator=generator))


def _randn(generator: torch.Generator, *shape: int) -> Tensor:
    return torch.randn(*shape, generator=generator, dtype=torch.float64)


# --- glow.lu_conv1x1 ----------------------------------------------------------------


def _lu_inputs(generator: torch.Generator) -> dict[str, Any]:
    channels = _randint(generator, 3, 6)
    height = _randint(generator, 1, 3)
    width = height + _randint(generator, 1, 2)  # h != w: a swapped h, w shows
    batch = _randint(generator, 3, 5)
    permutation = torch.randperm(channels, generator=generator)
    signs = torch.where(torch.rand(channels, generator=generator) < 0.5, -1.0, 1.0)
    return {
        "channels": channels,
        "seed": _randint(generator, 0, 1000),
        # Full random matrices: the entries outside the triangles must be ignored.
        "lower": 0.5 * _randn(generator, channels, channels),
        "upper": 0.5 * _randn(generator, channels, channels),
        "log_abs_s": 0.5 * _randn(generator, channels),
        "permutation": torch.eye(channels, dtype=torch.float64)[permutation],
        "sign_s": signs.to(torch.float64),
        "x": _randn(generator, batch, channels, height, width),
        "z": _randn(generator, batch, channels, height, width),
    }


def _prepared_layer(answer: Any, inputs: dict[str, Any]) -> Any:
    """The student's layer in float64, every parameter and buffer set to the grader's."""
    layer = answer(inputs["channels"], seed=inputs["seed"]).double()
    with torch.no_grad():
        for name in _LU_NAMES:
            getattr(layer, name).copy_(inputs[name])
    return layer


def _respond_lu(answer: Any, inputs: dict[str, Any]) -> dict[str, Any]:
    return respond_layer(lambda: _prepared_layer(answer, inputs), inputs["x"], inputs["z"])


def _judge_lu(inputs: dict[str, Any], outputs: dict[str, Any]) -> list[Result]:
    reference = LUInvertible1x1Conv(inputs["channels"]).double()
    with torch.no_grad():
        for name in _LU_NAMES:
            getattr(reference, name).copy_(inputs[name])

    points = {
        "forward_value": 1.0,
        "forward_log_det": 1.0,
        "inverse_value": 0.5,
        "inverse_log_det": 0.5,
    }
    return judge_transform(
        inputs,
        outputs,
        reference,
        points,
        built_by=(
            "MyLUConv1x1(channels, seed), then setting its parameters lower, upper, "
            "log_abs_s and buffers permutation, sign_s,"
        ),
    )


LU_CONV1X1 = Question(
    id="glow.lu_conv1x1",
    exercise="glow-ex-lu-log-det",
    title="An LU 1x1 convolution from scratch",
    answer_name="MyLUConv1x1",
    kind="class",
    contract=(
        "MyLUConv1x1(channels, seed=0) -> Transform with parameters lower (c, c), upper "
        "(c, c), log_abs_s (c,) and buffers permutation (c, c), sign_s (c,), as in the "
        "exercise's skeleton. W = permutation @ L @ (U + diag(sign_s * exp(log_abs_s))) with "
        "L = tril(lower, -1) + I and U = triu(upper, 1): the other entries of lower and upper "
        "are ignored. forward(x) on images (batch, c, h, w) -> (z, log_abs_det) with z = W x "
        "at every pixel and log_abs_det = h w sum(log_abs_s) of shape (batch,); inverse(z) -> "
        "(x, log_abs_det). The grader calls .double() and sets every parameter and buffer to "
        "random values."
    ),
    points=3.0,
    make_inputs=_lu_inputs,
    respond=_respond_lu,
    judge=_judge_lu,
    protected=(
        "flowcourse.glow.conv1x1:LUInvertible1x1Conv",
        "flowcourse.glow.conv1x1:Invertible1x1Conv",
    ),
    open_book=(
        "flowcourse.glow.LUInvertible1x1Conv is the reference layer; Invertible1x1Conv with "
        "the weight W would answer it too."
    ),
)


# --- glow.permutation_matrix --------------------------------------------------------

_PERMUTATION_CASES = 4


def _not_an_involution(generator: torch.Generator, size: int) -> Tensor:
    """A random permutation with pi(pi(k)) != k somewhere: P and P^T differ."""
    while True:
        permutation = torch.randperm(size, generator=generator)
        if not torch.equal(permutation[permutation], torch.arange(size)):
            return permutation


def _permutation_inputs(generator: torch.Generator) -> dict[str, Any]:
    sizes = [_randint(generator, 3, 9) for _ in range(_PERMUTATION_CASES)]
    return {
        "permutations": [_not_an_involution(generator, size) for size in sizes],
        "x": [_randn(generator, 2, size, 2, 3) for size in sizes],
    }


def _as_float64(value: Any) -> Tensor:
    return torch.as_tensor(value).to(torch.float64)


def _respond_permutation(answer: Any, inputs: dict[str, Any]) -> dict[str, Any]:
    outputs: dict[str, Any] = {}
    for case, permutation in enumerate(inputs["permutations"]):
        attempt(outputs, f"matrix_{case}", lambda p=permutation: _as_float64(answer(p.clone())))
    return outputs


def _judge_permutation(inputs: dict[str, Any], outputs: dict[str, Any]) -> list[Result]:
    results = []
    worth = 2.0 / len(inputs["permutations"])
    for case, permutation in enumerate(inputs["permutations"]):
        size = permutation.numel()
        expected = torch.eye(size, dtype=torch.float64)[permutation]
        what = f"P for the permutation {permutation.tolist()}"
        result = compare(f"P_pi, case {case}", outputs, f"matrix_{case}", expected, worth, what)
        results.append(result)
        actual = outputs.get(f"matrix_{case}")
        if result.passed or not isinstance(actual, Tensor) or actual.shape != (size, size):
            continue
        x = inputs["x"][case]
        shuffled = F.conv2d(x, actual.to(torch.float64)[:, :, None, None])
        same = bool(torch.allclose(shuffled, x[:, permutation]))
        transposed = torch.equal(actual.to(torch.float64), expected.T)
        message = (
            "your matrix is P_pi transposed: row k must be e_{pi(k)}, so that (P x)_k = x_{pi(k)}"
            if transposed
            else "as a 1x1 convolution your matrix does not give z[:, k] = x[:, pi(k)]"
        )
        results.append(
            diagnostic(f"1x1 convolution equals the shuffle, case {case}", same, message)
        )
    return results


PERMUTATION_MATRIX = Question(
    id="glow.permutation_matrix",
    exercise="glow-ex-permutation",
    title="The matrix of a channel shuffle",
    answer_name="permutation_matrix",
    kind="function",
    contract=(
        "permutation_matrix(permutation) -> float tensor (C, C). permutation: 1-D long tensor "
        "holding 0..C-1 once (e.g. RandomPermutation(C).permutation), the shuffle "
        "z[:, k] = x[:, permutation[k]]. The 1x1 convolution with weight P must equal the "
        "shuffle: (P x)_k = x_{pi(k)}."
    ),
    points=2.0,
    make_inputs=_permutation_inputs,
    respond=_respond_permutation,
    judge=_judge_permutation,
)


# --- glow.batchnorm_log_det ---------------------------------------------------------

_BATCHES = 4


def _batchnorm_inputs(generator: torch.Generator) -> dict[str, Any]:
    batches = []
    for _ in range(_BATCHES):
        size = _randint(generator, 2, 6)
        channels = _randint(generator, 1, 4)
        height, width = _randint(generator, 1, 4), _randint(generator, 1, 4)
        mean = 2.0 * _randn(generator, 1, channels, 1, 1)
        scale = (0.8 * _randn(generator, 1, channels, 1, 1)).exp()
        batches.append(mean + scale * _randn(generator, size, channels, height, width))
    return {"batches": batches}


def _respond_batchnorm(answer: Any, inputs: dict[str, Any]) -> dict[str, Any]:
    outputs: dict[str, Any] = {}
    for case, batch in enumerate(inputs["batches"]):
        attempt(outputs, f"log_det_{case}", lambda b=batch: answer(b.clone()))
    return outputs


def _batchnorm_reference(batch: Tensor) -> Tensor:
    per_channel = batch.transpose(0, 1).reshape(batch.shape[1], -1)
    std = per_channel.std(dim=1, unbiased=False)
    pixels = batch.shape[2] * batch.shape[3]
    return (-pixels * std.log().sum()).expand(batch.shape[0]).clone()


def _judge_batchnorm(inputs: dict[str, Any], outputs: dict[str, Any]) -> list[Result]:
    results = []
    worth = 2.0 / len(inputs["batches"])
    for case, batch in enumerate(inputs["batches"]):
        what = f"log|det| for a batch of shape {tuple(batch.shape)}"
        expected = _batchnorm_reference(batch)
        results.append(compare(f"batch {case}", outputs, f"log_det_{case}", expected, worth, what))
    return results


BATCHNORM_LOG_DET = Question(
    id="glow.batchnorm_log_det",
    exercise="glow-ex-batchnorm",
    title="The log-determinant of batch normalisation",
    answer_name="batchnorm_log_abs_det",
    kind="function",
    contract=(
        "batchnorm_log_abs_det(batch) -> tensor (B,): for images batch (B, C, H, W), float64, "
        "the log|det| of z = (x - mu_B) / sigma_B per channel, treated as a fixed bijection of "
        "each image: -H W sum_k log sigma_{B,k}, with sigma_{B,k} the population standard "
        "deviation (unbiased=False) of channel k over the batch and the pixels; the same value "
        "for every image."
    ),
    points=2.0,
    make_inputs=_batchnorm_inputs,
    respond=_respond_batchnorm,
    judge=_judge_batchnorm,
)

QUESTIONS = [LU_CONV1X1, PERMUTATION_MATRIX, BATCHNORM_LOG_DET]

#: Proof-only exercises carry no points.
SELF_ASSESSED: dict[str, str] = {}
