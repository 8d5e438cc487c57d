r"""Training loops: maximum likelihood on data, and reverse KL to an unnormalised density.

:func:`fit` minimises the negative log-likelihood of data, in nats per sample,

.. math::

    \mathcal{L}(\theta) = -\frac{1}{N} \sum_{n=1}^{N} \log p_\theta(x_n),

with Adam on shuffled minibatches, gradient clipping and optional early stopping.
:func:`fit_reverse_kl` fits a flow :math:`q_\theta` to a density known up to its
normaliser, :math:`p = \tilde p / Z`, by minimising

.. math::

    \mathbb{E}_{x \sim q_\theta}\big[\log q_\theta(x) - \log \tilde p(x)\big]
    = \mathrm{KL}(q_\theta \,\|\, p) - \log Z,

with reparametrised samples (Rezende & Mohamed 2015). Both are deterministic under
``seed`` on a given device, and both leave torch's global random state as they found
it. Taught in the chapters *NICE* (maximum likelihood) and *IAF and variational
inference* (reverse KL).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from flowcourse.preprocessing import bits_per_dim
from flowcourse.validation import check_tensor

__all__ = [
    "Preprocess",
    "History",
    "ReverseKLHistory",
    "pick_device",
    "fit",
    "fit_reverse_kl",
    "linear_annealing",
]

Preprocess = Callable[[Tensor, torch.Generator], tuple[Tensor, Tensor]]
"""``preprocess(batch, generator) -> (inputs, log_abs_det)``: see :func:`fit`."""


@dataclass
class History:
    """What :func:`fit` measured. Losses are negative log-likelihoods in nats per sample.

    ``train_loss[e]`` averages the minibatch losses of epoch ``e`` (measured before each
    update); ``validation_loss[e]`` is measured after epoch ``e``, in eval mode. The
    ``*_bits_per_dim`` lists are filled when ``fit`` is given ``num_levels``.
    ``best_epoch`` indexes the lowest validation loss (``None`` without validation data).
    """

    train_loss: list[float] = field(default_factory=list)
    validation_loss: list[float] = field(default_factory=list)
    train_bits_per_dim: list[float] = field(default_factory=list)
    validation_bits_per_dim: list[float] = field(default_factory=list)
    step_loss: list[float] = field(default_factory=list)
    best_epoch: int | None = None
    stopped_early: bool = False
    steps: int = 0
    seconds: float = 0.0


@dataclass
class ReverseKLHistory:
    r"""What :func:`fit_reverse_kl` measured, one entry per step.

    ``kl_bound[t]`` is :math:`\mathbb{E}_q[\log q - \log \tilde p]` in nats on the step's
    batch, always with :math:`\beta = 1`; it equals :math:`\mathrm{KL}(q\|p) - \log Z`.
    ``beta[t]`` is the annealing weight used for the gradient.
    """

    kl_bound: list[float] = field(default_factory=list)
    beta: list[float] = field(default_factory=list)
    seconds: float = 0.0

    def kl(self, log_normalizer: float) -> list[float]:
        r""":math:`\mathrm{KL}(q \| p)` in nats, given :math:`\log Z` (e.g. from
        :func:`flowcourse.data.log_normalizer`)."""
        return [bound + log_normalizer for bound in self.kl_bound]


def pick_device(device: str | torch.device = "auto") -> torch.device:
    """The device to train on: ``"auto"`` picks CUDA, else Apple's MPS, else the CPU.

    Anything else is passed to ``torch.device``.

    Example:
        >>> from flowcourse.training import pick_device
        >>> pick_device("cpu")
        device(type='cpu')
    """
    if isinstance(device, torch.device):
        return device
    if not isinstance(device, str):
        raise TypeError(f"expected device to be a str or torch.device, got {type(device).__name__}")
    if device != "auto":
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def linear_annealing(warmup_steps: int = 10_000, start: float = 0.01) -> Callable[[int], float]:
    r"""Rezende & Mohamed's (2015) inverse temperature :math:`\beta_t = \min(1, \beta_0 + t/T)`.

    Weighting :math:`\log \tilde p` by a small :math:`\beta` early on flattens the target,
    so the flow spreads out before it commits to modes it might otherwise miss. Pass the
    result as ``annealing`` to :func:`fit_reverse_kl`.

    Example:
        >>> beta = linear_annealing(warmup_steps=100, start=0.01)
        >>> beta(0), beta(50), beta(500)
        (0.01, 0.51, 1.0)
    """
    _check_positive_int(warmup_steps, "warmup_steps")
    if not 0 < start <= 1:
        raise ValueError(f"expected start in (0, 1], got {start!r}")
    return lambda step: min(1.0, start + step / warmup_steps)


def fit(
    flow: nn.Module,
    train_data: Tensor,
    *,
    validation_data: Tensor | None = None,
    epochs: int = 100,
    batch_size: int = 128,
    learning_rate: float = 1e-3,
    max_grad_norm: float | None = 10.0,
    patience: int | None = None,
    preprocess: Preprocess | None = None,
    num_levels: int | None = None,
    seed: int = 0,
    device: str | torch.device = "auto",
    progress: bool = True,
    max_steps: int | None = None,
) -> History:
    r"""Fit ``flow`` to ``train_data`` by maximum likelihood with Adam.

    Each epoch shuffles the data, and for every minibatch computes
    ``inputs, log_abs_det = preprocess(batch, generator)`` (or ``batch, 0`` without
    ``preprocess``) and the loss

    .. math::

        -\frac{1}{B} \sum_b \big[\log p_\text{flow}(\text{inputs}_b) + \text{log\_abs\_det}_b\big],

    that is the negative log-likelihood of the data *before* preprocessing, in nats. A
    ``preprocess`` such as :class:`flowcourse.preprocessing.DequantizeLogit` draws fresh
    dequantisation noise from ``generator`` for every batch, so images get new noise
    every epoch; the validation set gets the same noise at every evaluation, so its
    losses are comparable. With ``num_levels`` (:math:`L`) the history also reports
    bits/dim, :math:`-(\log p - D\log L)/(D \ln 2)` with :math:`D` the values per sample.

    Args:
        flow: a module with ``log_prob`` (a :class:`flowcourse.core.Flow`); it is moved to
            ``device`` and left there, in eval mode.
        train_data: a float tensor ``(N, ...)`` (vectors or images), on any device.
        validation_data: held-out data of the same shape, evaluated after every epoch.
        epochs, batch_size, learning_rate: the usual; the last batch may be smaller.
        max_grad_norm: clip the gradient's global norm to this (``None``: no clipping).
        patience: stop after this many epochs without a lower validation loss and
            restore the weights of the best epoch (needs ``validation_data``).
        preprocess: ``(batch, generator) -> (inputs, log_abs_det)``, run on ``device``.
        num_levels: the number of levels of discrete data, to report bits/dim.
        seed: seeds the shuffling, the preprocessing noise and any other randomness
            (dropout): the same seed gives the same history on the same device.
        device: ``"auto"`` (see :func:`pick_device`), ``"cpu"``, ``"cuda"``, ...
        progress: show a tqdm bar with the losses and their unit.
        max_steps: stop after this many optimiser steps in total.

    Returns:
        A :class:`History`.

    Example:
        >>> from flowcourse.core import Flow, StandardNormal
        >>> from flowcourse.coupling import DiagonalScaling
        >>> from flowcourse.training import fit
        >>> flow = Flow(DiagonalScaling(2), StandardNormal(2))  # learns one scale per axis
        >>> data = 3 * torch.randn(512, 2, generator=torch.Generator().manual_seed(0))
        >>> history = fit(flow, data, epochs=30, learning_rate=0.05, device="cpu", progress=False)
        >>> history.train_loss[0] > history.train_loss[-1]  # nats per sample
        True
        >>> scale = flow.transform.log_scale.exp()  # z = x * e^s, with e^s near 1/3
        >>> torch.allclose(scale, torch.tensor(1 / 3), atol=0.03)
        True
    """
    _check_flow(flow, "log_prob")
    train_data = _check_data(train_data, "train_data")
    if validation_data is not None:
        validation_data = _check_data(validation_data, "validation_data")
        if validation_data.shape[1:] != train_data.shape[1:]:
            raise ValueError(
                f"expected validation_data of shape (N, {_shape(train_data.shape[1:])}) like "
                f"train_data, got {tuple(validation_data.shape)}"
            )
    event_shape = getattr(getattr(flow, "base", None), "event_shape", None)
    if preprocess is None and event_shape is not None:
        if tuple(train_data.shape[1:]) != tuple(event_shape):
            raise ValueError(
                f"expected train_data of shape (N, {_shape(event_shape)}) to match the flow, "
                f"got {tuple(train_data.shape)}"
            )
    _check_positive_int(epochs, "epochs")
    _check_positive_int(batch_size, "batch_size")
    _check_positive_float(learning_rate, "learning_rate")
    if max_grad_norm is not None:
        _check_positive_float(max_grad_norm, "max_grad_norm")
    if patience is not None:
        _check_positive_int(patience, "patience")
        if validation_data is None:
            raise ValueError("expected validation_data when patience is set (early stopping)")
    if max_steps is not None:
        _check_positive_int(max_steps, "max_steps")
    if num_levels is not None:
        _check_positive_int(num_levels, "num_levels")
    if preprocess is not None and not callable(preprocess):
        raise TypeError(f"expected preprocess to be callable, got {type(preprocess).__name__}")

    _check_trainable(flow)
    device = pick_device(device)
    flow.to(device)
    dtype = _floating_dtype(flow)
    num_dims = math.prod(train_data.shape[1:])
    history = History()
    best_loss, best_state = math.inf, None
    start = time.perf_counter()

    def loss_of(batch: Tensor, generator: torch.Generator) -> Tensor:
        batch = batch.to(device=device, dtype=dtype)
        if preprocess is None:
            inputs, log_abs_det = batch, batch.new_zeros(len(batch))
        else:
            inputs, log_abs_det = preprocess(batch, generator)
        return -(flow.log_prob(inputs) + log_abs_det)

    def evaluate(data: Tensor) -> float:
        generator = torch.Generator(device=device).manual_seed(seed + 1)
        flow.eval()
        with torch.no_grad():
            total = sum(float(loss_of(batch, generator).sum()) for batch in data.split(batch_size))
        flow.train()
        return total / len(data)

    def bits(nats: float) -> float:
        return float(bits_per_dim(-nats, num_dims, num_levels))

    with _seeded(seed, device):
        shuffle_generator = torch.Generator().manual_seed(seed)
        noise_generator = torch.Generator(device=device).manual_seed(seed)
        optimizer = torch.optim.Adam(flow.parameters(), lr=learning_rate)
        flow.train()
        bar = tqdm(range(epochs), desc="fit", unit="epoch", disable=not progress)
        for epoch in bar:
            total, count = 0.0, 0
            order = torch.randperm(len(train_data), generator=shuffle_generator)
            for indices in order.split(batch_size):
                loss = loss_of(train_data[indices.to(train_data.device)], noise_generator).mean()
                loss_value = float(loss.detach())  # one device sync per step, for the history
                if not math.isfinite(loss_value):
                    raise RuntimeError(
                        f"the training loss became {loss_value} at epoch {epoch}, step "
                        f"{history.steps}: lower learning_rate or max_grad_norm"
                    )
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if max_grad_norm is not None:
                    nn.utils.clip_grad_norm_(flow.parameters(), max_grad_norm)
                optimizer.step()
                history.steps += 1
                history.step_loss.append(loss_value)
                total += loss_value * len(indices)
                count += len(indices)
                if max_steps is not None and history.steps >= max_steps:
                    break
            history.train_loss.append(total / count)
            postfix = {"train": _format(total / count, num_levels, bits)}
            if num_levels is not None:
                history.train_bits_per_dim.append(bits(total / count))
            if validation_data is not None:
                validation_loss = evaluate(validation_data)
                if not math.isfinite(validation_loss):
                    raise RuntimeError(
                        f"the validation loss became {validation_loss} after epoch {epoch}: "
                        f"the flow gives zero density to some validation samples"
                    )
                history.validation_loss.append(validation_loss)
                postfix["validation"] = _format(validation_loss, num_levels, bits)
                if num_levels is not None:
                    history.validation_bits_per_dim.append(bits(validation_loss))
                if validation_loss < best_loss:
                    best_loss, history.best_epoch = validation_loss, epoch
                    if patience is not None:
                        best_state = copy.deepcopy(flow.state_dict())
                elif patience is not None and epoch - history.best_epoch >= patience:
                    history.stopped_early = True
            bar.set_postfix(postfix)
            if history.stopped_early or (max_steps is not None and history.steps >= max_steps):
                break
        bar.close()
    if best_state is not None:
        flow.load_state_dict(best_state)
    flow.eval()
    history.seconds = time.perf_counter() - start
    return history


def fit_reverse_kl(
    flow: nn.Module,
    log_density: Callable[[Tensor], Tensor],
    *,
    steps: int = 2000,
    batch_size: int = 256,
    learning_rate: float = 1e-3,
    max_grad_norm: float | None = 10.0,
    annealing: Callable[[int], float] | None = None,
    seed: int = 0,
    device: str | torch.device = "auto",
    progress: bool = True,
) -> ReverseKLHistory:
    r"""Fit ``flow`` to an unnormalised density by minimising the reverse KL.

    Each step draws ``batch_size`` reparametrised samples with their log-densities,
    ``x, log_q = flow.sample_and_log_prob(batch_size)``, and minimises

    .. math::

        \frac{1}{B} \sum_b \big[\log q(x_b) - \beta_t \log \tilde p(x_b)\big],

    where :math:`\beta_t` = ``annealing(t)`` (1 without annealing; see
    :func:`linear_annealing`). The reverse KL is *mode seeking*: a flow that misses a
    mode is barely penalised, which is why annealing helps. From Rezende & Mohamed
    (2015); taught in the chapter *IAF and variational inference*.

    Args:
        flow: a :class:`flowcourse.core.Flow` (needs ``sample_and_log_prob``); moved to
            ``device`` and left there, in eval mode.
        log_density: :math:`\log \tilde p`, from ``(batch, D)`` points to ``(batch,)``
            values, differentiable (e.g. ``lambda z: -U1(z)``).
        steps, batch_size, learning_rate, max_grad_norm: as in :func:`fit`.
        annealing: ``step -> beta`` in (0, 1].
        seed, device, progress: as in :func:`fit`.

    Returns:
        A :class:`ReverseKLHistory`; ``history.kl(log_normalizer)`` gives the KL in nats.

    Example:
        >>> from flowcourse.core import Flow, StandardNormal
        >>> from flowcourse.coupling import DiagonalScaling
        >>> flow = Flow(DiagonalScaling(2), StandardNormal(2))
        >>> target = lambda x: -0.5 * ((x / 2) ** 2).sum(dim=1)  # N(0, 4 I) without log Z
        >>> history = fit_reverse_kl(
        ...     flow, target, steps=300, learning_rate=0.05, device="cpu", progress=False
        ... )
        >>> kl = history.kl(log_normalizer=math.log(8 * math.pi))  # nats; KL >= 0
        >>> round(kl[0], 1), abs(kl[-1]) < 0.02  # KL(N(0, I) || N(0, 4 I)) = log 4 - 3/4
        (0.6, True)
    """
    _check_flow(flow, "sample_and_log_prob")
    if not callable(log_density):
        raise TypeError(f"expected log_density to be callable, got {type(log_density).__name__}")
    if annealing is not None and not callable(annealing):
        raise TypeError(f"expected annealing to be callable, got {type(annealing).__name__}")
    _check_positive_int(steps, "steps")
    _check_positive_int(batch_size, "batch_size")
    _check_positive_float(learning_rate, "learning_rate")
    if max_grad_norm is not None:
        _check_positive_float(max_grad_norm, "max_grad_norm")

    _check_trainable(flow)
    device = pick_device(device)
    flow.to(device)
    history = ReverseKLHistory()
    start = time.perf_counter()
    with _seeded(seed, device):
        optimizer = torch.optim.Adam(flow.parameters(), lr=learning_rate)
        flow.train()
        bar = tqdm(range(steps), desc="fit_reverse_kl", unit="step", disable=not progress)
        for step in bar:
            x, log_q = flow.sample_and_log_prob(batch_size)
            log_p = log_density(x)
            if not isinstance(log_p, Tensor) or log_p.shape != (batch_size,):
                got = tuple(log_p.shape) if isinstance(log_p, Tensor) else type(log_p).__name__
                raise ValueError(
                    f"expected log_density to return a tensor of shape ({batch_size},), got {got}"
                )
            bound = float((log_q - log_p).mean().detach())
            if not math.isfinite(bound):
                raise RuntimeError(
                    f"the KL bound became {bound} at step {step}: log_density or the "
                    f"flow gave non-finite values (a target that is -inf somewhere, such as "
                    f"Checkerboard(smoothing=0), cannot be fitted this way)"
                )
            beta = 1.0 if annealing is None else float(annealing(step))
            if not 0 < beta <= 1:
                raise ValueError(f"expected annealing to return beta in (0, 1], got {beta}")
            loss = (log_q - beta * log_p).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if max_grad_norm is not None:
                nn.utils.clip_grad_norm_(flow.parameters(), max_grad_norm)
            optimizer.step()
            history.kl_bound.append(bound)
            history.beta.append(beta)
            if step % 10 == 0 or step == steps - 1:
                bar.set_postfix({"KL bound": f"{bound:.3f} nats", "beta": f"{beta:.2f}"})
        bar.close()
    flow.eval()
    history.seconds = time.perf_counter() - start
    return history


@contextmanager
def _seeded(seed: int, device: torch.device) -> Iterator[None]:
    """Seed every torch generator for the block, then restore the caller's random state."""
    accelerators = [] if device.type == "cpu" else [device]
    device_type = "cuda" if device.type == "cpu" else device.type
    with torch.random.fork_rng(devices=accelerators, device_type=device_type):
        torch.manual_seed(seed)
        yield


def _format(nats: float, num_levels: int | None, bits: Callable[[float], float]) -> str:
    return f"{nats:.3f} nats" if num_levels is None else f"{bits(nats):.3f} bits/dim"


def _shape(shape: tuple[int, ...] | torch.Size) -> str:
    return ", ".join(map(str, shape))


def _floating_dtype(module: nn.Module) -> torch.dtype:
    tensors = [*module.parameters(), *module.buffers()]
    return next((t.dtype for t in tensors if t.is_floating_point()), torch.get_default_dtype())


def _check_flow(flow: object, method: str) -> None:
    if not isinstance(flow, nn.Module) or not callable(getattr(flow, method, None)):
        raise TypeError(
            f"expected flow to be an nn.Module with a {method} method (a flowcourse Flow), "
            f"got {type(flow).__name__}"
        )


def _check_trainable(flow: nn.Module) -> None:
    if not any(parameter.requires_grad for parameter in flow.parameters()):
        raise ValueError(
            f"expected flow to have trainable parameters, got a {type(flow).__name__} with none"
        )


def _check_data(data: object, name: str) -> Tensor:
    data = check_tensor(data, name)
    if data.dim() < 2 or len(data) == 0:
        raise ValueError(f"expected {name} of shape (N, ...) with N >= 1, got {tuple(data.shape)}")
    return data


def _check_positive_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"expected {name} to be a positive int, got {value!r}")
    return value


def _check_positive_float(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"expected {name} to be a positive number, got {value!r}")
    return float(value)
