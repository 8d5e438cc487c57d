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
it. Taught in the chapters *NICE* (maximum likelihood) and *Variational inference* (reverse KL).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from flowcourse.core import apply
from flowcourse.preprocessing import bits_per_dim
from flowcourse.seeding import seeded
from flowcourse.validation import (
    check_positive_float,
    check_positive_int,
    check_tensor,
    inside,
)

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

    Anything else is passed to ``torch.device``, and must be a device this machine has:
    asking for ``"cuda"`` where torch finds no CUDA GPU raises a ``ValueError`` that says
    so (``"auto"`` would have picked the CPU).

    Example:
        >>> from flowcourse.training import pick_device
        >>> pick_device("cpu")
        device(type='cpu')
    """
    if not isinstance(device, (str, torch.device)):
        raise TypeError(f"expected device to be a str or torch.device, got {type(device).__name__}")
    if device != "auto":
        return _check_available(torch.device(device))
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def _check_available(device: torch.device) -> torch.device:
    """Refuse a GPU that is not there, before torch fails somewhere deep inside."""
    advice = 'use device="auto", which picks a GPU when there is one and the CPU otherwise'
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ValueError(
                f"expected a CUDA GPU for device={str(device)!r}, but torch finds none on this "
                f"machine (torch.cuda.is_available() is False; is this torch built with CUDA, "
                f"and is a GPU visible?); {advice}"
            )
        if device.index is not None and device.index >= count:
            raise ValueError(
                f"expected device={str(device)!r} to name one of the {count} CUDA GPU(s) here "
                f"(cuda:0 to cuda:{count - 1}); {advice}"
            )
    if device.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ValueError(
                f"expected an Apple GPU for device={str(device)!r}, but torch finds none "
                f"(torch.backends.mps.is_available() is False); {advice}"
            )
    return device


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
    check_positive_int(warmup_steps, "warmup_steps")
    if not check_positive_float(start, "start") <= 1:
        raise ValueError(f"expected start in (0, 1], got {start!r}")
    return lambda step: min(1.0, start + step / warmup_steps)


def fit(
    flow: nn.Module,
    train_data: Tensor,
    *,
    validation_data: Tensor | None = None,
    train_context: Tensor | None = None,
    validation_context: Tensor | None = None,
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
    The data are checked once, here, and the first batch at the flow's door; the other
    batches are not checked again (see :mod:`flowcourse.validation`).

    Args:
        flow: a module with ``log_prob`` (a :class:`flowcourse.core.Flow`); it is moved to
            ``device`` and left there, in eval mode.
        train_data: a float tensor ``(N, ...)`` (vectors or images), on any device.
        validation_data: held-out data of the same shape, evaluated after every epoch.
        train_context, validation_context: for a conditional flow, the context of each
            sample, ``(N, context_features)``; the batches keep data and context together.
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
    train = _Data(train_data, train_context, "train")
    validation = None
    if validation_data is not None:
        validation = _Data(validation_data, validation_context, "validation", like=train)
    elif validation_context is not None:
        raise ValueError("expected validation_data with validation_context, got none")
    _check_fit_arguments(flow, train, validation, preprocess, num_levels, patience)
    check_positive_int(epochs, "epochs")
    check_positive_int(batch_size, "batch_size")
    if max_steps is not None:
        check_positive_int(max_steps, "max_steps")
    _check_optimiser(learning_rate, max_grad_norm)
    device = _prepare(flow, device)
    loop = _Loop(flow, device, preprocess, batch_size, seed, max_steps, num_levels, train)
    stopping = _EarlyStopping(patience)
    with _training(flow, learning_rate, seed, device, loop.history) as optimizer:
        bar = tqdm(range(epochs), desc="fit", unit="epoch", disable=not progress)
        for epoch in bar:
            postfix = {"train": loop.train_epoch(optimizer, max_grad_norm, epoch)}
            if validation is not None:
                postfix["validation"] = loop.validate(validation, epoch)
                stopping.update(loop.history, flow, epoch)
            bar.set_postfix(postfix)
            if loop.history.stopped_early or loop.out_of_steps():
                break
        bar.close()
        stopping.restore(flow)
    return loop.history


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
    (2015); taught in the chapter *Variational inference*.

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
    check_positive_int(steps, "steps")
    check_positive_int(batch_size, "batch_size")
    _check_optimiser(learning_rate, max_grad_norm)
    device = _prepare(flow, device)
    history = ReverseKLHistory()
    with _training(flow, learning_rate, seed, device, history) as optimizer:
        bar = tqdm(range(steps), desc="fit_reverse_kl", unit="step", disable=not progress)
        for step in bar:
            x, log_q = flow.sample_and_log_prob(batch_size)
            log_p = _checked_log_density(log_density, x, batch_size)
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
            _step(optimizer, (log_q - beta * log_p).mean(), max_grad_norm)
            history.kl_bound.append(bound)
            history.beta.append(beta)
            if step % 10 == 0 or step == steps - 1:
                bar.set_postfix({"KL bound": f"{bound:.3f} nats", "beta": f"{beta:.2f}"})
        bar.close()
    return history


# -------------------------------------------------------------- the parts of both loops


def _prepare(flow: nn.Module, device: str | torch.device) -> torch.device:
    """Check that ``flow`` can be trained, pick the device and move the flow there."""
    if not any(parameter.requires_grad for parameter in flow.parameters()):
        raise ValueError(
            f"expected flow to have trainable parameters, got a {type(flow).__name__} with none"
        )
    device = pick_device(device)
    flow.to(device)
    return device


@contextmanager
def _training(
    flow: nn.Module,
    learning_rate: float,
    seed: int,
    device: torch.device,
    history: History | ReverseKLHistory,
) -> Iterator[torch.optim.Adam]:
    """Both loops' frame: seeded, an Adam optimiser, the flow in train mode; afterwards
    the flow in eval mode and the seconds taken in ``history.seconds``."""
    start = time.perf_counter()
    with seeded(seed, device):
        optimizer = torch.optim.Adam(flow.parameters(), lr=learning_rate)
        flow.train()
        yield optimizer
    flow.eval()
    history.seconds = time.perf_counter() - start


def _check_optimiser(learning_rate: object, max_grad_norm: object) -> None:
    check_positive_float(learning_rate, "learning_rate")
    if max_grad_norm is not None:
        check_positive_float(max_grad_norm, "max_grad_norm")


def _step(optimizer: torch.optim.Optimizer, loss: Tensor, max_grad_norm: float | None) -> None:
    """One optimiser step on ``loss``, the gradient's global norm clipped to ``max_grad_norm``."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if max_grad_norm is not None:
        parameters = [p for group in optimizer.param_groups for p in group["params"]]
        nn.utils.clip_grad_norm_(parameters, max_grad_norm)
    optimizer.step()


def _checked_log_density(
    log_density: Callable[[Tensor], Tensor], x: Tensor, batch_size: int
) -> Tensor:
    log_p = log_density(x)
    if not isinstance(log_p, Tensor) or log_p.shape != (batch_size,):
        got = tuple(log_p.shape) if isinstance(log_p, Tensor) else type(log_p).__name__
        raise ValueError(
            f"expected log_density to return a tensor of shape ({batch_size},), got {got}"
        )
    return log_p


# ------------------------------------------------------------------- the parts of fit


class _Data:
    """Data and (optionally) their context, checked once, where the user hands them in."""

    def __init__(
        self, data: object, context: object, split: str, like: _Data | None = None
    ) -> None:
        name = f"{split}_data"
        self.data = check_tensor(data, name)
        if self.data.dim() < 2 or len(self.data) == 0:
            raise ValueError(
                f"expected {name} of shape (N, ...) with N >= 1, got {tuple(self.data.shape)}"
            )
        if like is not None and self.data.shape[1:] != like.data.shape[1:]:
            raise ValueError(
                f"expected {name} of shape (N, {_shape(like.data.shape[1:])}) like "
                f"train_data, got {tuple(self.data.shape)}"
            )
        self.context = None
        if context is not None:
            self.context = check_tensor(context, f"{split}_context")
            if self.context.dim() != 2 or len(self.context) != len(self.data):
                raise ValueError(
                    f"expected {split}_context of shape ({len(self.data)}, context_features), "
                    f"one row per sample of {name}, got {tuple(self.context.shape)}"
                )
        if like is not None and (self.context is None) != (like.context is None):
            raise ValueError(
                "expected a context for both train_data and validation_data or neither"
            )

    def __len__(self) -> int:
        return len(self.data)

    def batch(self, indices: Tensor) -> tuple[Tensor, Tensor | None]:
        rows = indices.to(self.data.device)
        context = None if self.context is None else self.context[indices.to(self.context.device)]
        return self.data[rows], context


def _check_fit_arguments(
    flow: object,
    train: _Data,
    validation: _Data | None,
    preprocess: object,
    num_levels: object,
    patience: object,
) -> None:
    _check_flow(flow, "log_prob")
    event_shape = getattr(getattr(flow, "base", None), "event_shape", None)
    if preprocess is None and event_shape is not None:
        if tuple(train.data.shape[1:]) != tuple(event_shape):
            raise ValueError(
                f"expected train_data of shape (N, {_shape(event_shape)}) to match the flow, "
                f"got {tuple(train.data.shape)}"
            )
    if preprocess is not None and not callable(preprocess):
        raise TypeError(f"expected preprocess to be callable, got {type(preprocess).__name__}")
    if num_levels is not None:
        check_positive_int(num_levels, "num_levels")
    if patience is not None:
        check_positive_int(patience, "patience")
        if validation is None:
            raise ValueError("expected validation_data when patience is set (early stopping)")


class _Loop:
    """What one epoch of :func:`fit` needs: the flow, the data, the generators, the history."""

    def __init__(
        self,
        flow: nn.Module,
        device: torch.device,
        preprocess: Preprocess | None,
        batch_size: int,
        seed: int,
        max_steps: int | None,
        num_levels: int | None,
        train: _Data,
    ) -> None:
        self.flow, self.device, self.preprocess = flow, device, preprocess
        self.batch_size, self.seed, self.max_steps = batch_size, seed, max_steps
        self.num_levels, self.train = num_levels, train
        self.dtype = _floating_dtype(flow)
        self.num_dims = math.prod(train.data.shape[1:])
        self.shuffle_generator = torch.Generator().manual_seed(seed)
        self.noise_generator = torch.Generator(device=device).manual_seed(seed)
        self.history = History()

    def loss(self, data: Tensor, context: Tensor | None, generator: torch.Generator) -> Tensor:
        """The negative log-likelihood of every sample of a batch, in nats."""
        data = data.to(device=self.device, dtype=self.dtype)
        if context is not None:
            context = context.to(device=self.device, dtype=self.dtype)
        if self.preprocess is None:
            inputs, log_abs_det = data, data.new_zeros(len(data))
        else:
            inputs, log_abs_det = self.preprocess(data, generator)
        # The first batch goes through the flow's door (its checks); the rest do not.
        with nullcontext() if self.history.steps == 0 else inside():
            log_prob = apply(self.flow.log_prob, inputs, context)
            return -(log_prob + log_abs_det)

    def train_epoch(
        self, optimizer: torch.optim.Optimizer, max_grad_norm: float | None, epoch: int
    ) -> str:
        """One pass over the shuffled training data; returns the epoch's loss for the bar."""
        total, count = 0.0, 0
        order = torch.randperm(len(self.train), generator=self.shuffle_generator)
        for indices in order.split(self.batch_size):
            loss = self.loss(*self.train.batch(indices), self.noise_generator).mean()
            loss_value = float(loss.detach())  # one device sync per step, for the history
            if not math.isfinite(loss_value):
                raise RuntimeError(
                    f"the training loss became {loss_value} at epoch {epoch}, step "
                    f"{self.history.steps}: lower learning_rate or max_grad_norm"
                )
            _step(optimizer, loss, max_grad_norm)
            self.history.steps += 1
            self.history.step_loss.append(loss_value)
            total, count = total + loss_value * len(indices), count + len(indices)
            if self.out_of_steps():
                break
        return self._record(total / count, self.history.train_loss, self.history.train_bits_per_dim)

    def validate(self, validation: _Data, epoch: int) -> str:
        """The loss of the validation data, in eval mode, with the same noise every time."""
        generator = torch.Generator(device=self.device).manual_seed(self.seed + 1)
        self.flow.eval()
        with torch.no_grad(), inside():
            batches = torch.arange(len(validation)).split(self.batch_size)
            total = sum(float(self.loss(*validation.batch(b), generator).sum()) for b in batches)
        self.flow.train()
        loss = total / len(validation)
        if not math.isfinite(loss):
            raise RuntimeError(
                f"the validation loss became {loss} after epoch {epoch}: "
                f"the flow gives zero density to some validation samples"
            )
        history = self.history
        return self._record(loss, history.validation_loss, history.validation_bits_per_dim)

    def out_of_steps(self) -> bool:
        return self.max_steps is not None and self.history.steps >= self.max_steps

    def _record(self, nats: float, losses: list[float], bits_per_dim_list: list[float]) -> str:
        """Append a loss (and its bits/dim) to the history; return it with its unit."""
        losses.append(nats)
        if self.num_levels is None:
            return f"{nats:.3f} nats"
        bits = float(bits_per_dim(-nats, self.num_dims, self.num_levels))
        bits_per_dim_list.append(bits)
        return f"{bits:.3f} bits/dim"


class _EarlyStopping:
    """Track the best validation loss; with ``patience``, stop and restore its weights."""

    def __init__(self, patience: int | None) -> None:
        self.patience = patience
        self.best_loss = math.inf
        self.best_state: dict[str, Tensor] | None = None

    def update(self, history: History, flow: nn.Module, epoch: int) -> None:
        loss = history.validation_loss[-1]
        if loss < self.best_loss:
            self.best_loss, history.best_epoch = loss, epoch
            if self.patience is not None:
                self.best_state = copy.deepcopy(flow.state_dict())
        elif self.patience is not None and epoch - history.best_epoch >= self.patience:
            history.stopped_early = True

    def restore(self, flow: nn.Module) -> None:
        if self.best_state is not None:
            flow.load_state_dict(self.best_state)


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
