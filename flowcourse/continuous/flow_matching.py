r"""Flow matching on straight paths (Lipman et al. 2023; rectified flow, Liu et al. 2023).

Pair a data point :math:`x` with a noise sample :math:`\varepsilon \sim \mathcal{N}(0, I)`
and join them by a straight line, travelled at constant speed (data at :math:`t = 0`,
noise at :math:`t = 1`, the package's time convention):

.. math::

    z_t = (1 - t)\, x + t\, \varepsilon, \qquad
    u = \frac{d z_t}{dt} = \varepsilon - x.

Flow matching regresses a velocity field on these *conditional* velocities,

.. math::

    \mathcal{L}(\theta) = \mathbb{E}_{t \sim U(0, 1),\, x \sim p_\text{data},\,
    \varepsilon \sim \mathcal{N}(0, I)}
    \big\lVert v_\theta(z_t, t) - (\varepsilon - x)\big\rVert^2 .

Its minimiser is the conditional mean :math:`v^\star(z, t) = \mathbb{E}[\varepsilon - x
\mid z_t = z]`, the *marginal* velocity, whose flow carries :math:`p_\text{data}` at
:math:`t = 0` to :math:`\mathcal{N}(0, I)` at :math:`t = 1` (Lipman et al. 2023, Thm. 1).
Training needs no ODE solve and no divergence: one network evaluation per sample.
Taught in the chapter *Continuous-time flows and flow matching*.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from flowcourse.continuous.cnf import ContinuousFlow
from flowcourse.core import Flow
from flowcourse.seeding import seeded
from flowcourse.training import Preprocess, pick_device
from flowcourse.validation import check_positive_float, check_positive_int, check_tensor

__all__ = [
    "straight_path",
    "flow_matching_loss",
    "FlowMatchingHistory",
    "fit_flow_matching",
]


def straight_path(x: Tensor, noise: Tensor, t: float | Tensor) -> tuple[Tensor, Tensor]:
    r"""The point :math:`z_t = (1 - t)x + t\varepsilon` and its velocity :math:`\varepsilon - x`.

    ``x`` and ``noise`` have shape ``(batch, D)``; ``t`` is a number or has shape
    ``(batch,)``. Returns ``(z_t, target)``, both ``(batch, D)``.

    Example:
        >>> x, noise = torch.tensor([[2.0, 0.0]]), torch.tensor([[0.0, 1.0]])
        >>> straight_path(x, noise, 0.25)
        (tensor([[1.5000, 0.2500]]), tensor([[-2.,  1.]]))
    """
    x, noise = check_tensor(x, "x"), check_tensor(noise, "noise")
    if x.dim() != 2 or noise.shape != x.shape:
        raise ValueError(
            f"expected x and noise of the same shape (batch, D), got {tuple(x.shape)} "
            f"and {tuple(noise.shape)}"
        )
    t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
    if t.dim() == 0:
        t = t.expand(x.shape[0])
    if t.shape != (x.shape[0],):
        raise ValueError(
            f"expected t to be a number or of shape ({x.shape[0]},), got {tuple(t.shape)}"
        )
    t = t[:, None]
    return (1 - t) * x + t * noise, noise - x


def flow_matching_loss(
    velocity: Callable[[Tensor, Tensor], Tensor],
    x: Tensor,
    generator: torch.Generator | None = None,
) -> Tensor:
    r"""The flow-matching loss on a batch of :math:`B` samples,
    :math:`\frac1B\sum_b \lVert v(z_{t_b}, t_b) - (\varepsilon_b - x_b)\rVert^2`.

    Draws one time :math:`t_b \sim U(0, 1)` and one noise :math:`\varepsilon_b` per sample
    from ``generator``. Returns a scalar: the squared error summed over the :math:`D`
    coordinates and averaged over the batch.

    Example:
        >>> zero_field = lambda z, t: torch.zeros_like(z)
        >>> x = torch.zeros(100_000, 2)  # all the data at the origin: the target is the noise
        >>> loss = flow_matching_loss(zero_field, x, torch.Generator().manual_seed(0))
        >>> abs(float(loss) - 2.0) < 0.05  # E||noise||^2 = D
        True
    """
    x = check_tensor(x, "x")
    if x.dim() != 2:
        raise ValueError(f"expected x of shape (batch, D), got {tuple(x.shape)}")
    t = torch.rand(x.shape[0], generator=generator, device=x.device, dtype=x.dtype)
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    z_t, target = straight_path(x, noise, t)
    return (velocity(z_t, t) - target).pow(2).sum(dim=1).mean()


@dataclass
class FlowMatchingHistory:
    """What :func:`fit_flow_matching` measured: the loss of every step (squared velocity
    error, in squared units of the data per unit time squared), the number of steps and
    the wall time in seconds."""

    step_loss: list[float] = field(default_factory=list)
    steps: int = 0
    seconds: float = 0.0


def _velocity_of(model: object) -> nn.Module:
    """The velocity field of a ``Flow`` of a ``ContinuousFlow``, of a ``ContinuousFlow``,
    or the field itself."""
    if isinstance(model, Flow):
        model = model.transform
    if isinstance(model, ContinuousFlow):
        return model.velocity
    if isinstance(model, nn.Module):
        return model
    raise TypeError(
        f"expected a Flow of a ContinuousFlow, a ContinuousFlow or a velocity nn.Module, "
        f"got {type(model).__name__}"
    )


def fit_flow_matching(
    model: Flow | ContinuousFlow | nn.Module,
    train_data: Tensor,
    *,
    steps: int = 2000,
    batch_size: int = 256,
    learning_rate: float = 1e-3,
    max_grad_norm: float | None = 10.0,
    cosine_decay: bool = True,
    preprocess: Preprocess | None = None,
    seed: int = 0,
    device: str | torch.device = "auto",
    progress: bool = True,
) -> FlowMatchingHistory:
    r"""Train a velocity field by flow matching with Adam (no ODE solve while training).

    Every step draws a minibatch (the data are reshuffled every epoch), passes it through
    ``preprocess`` if given (its log-determinant is not needed here), and takes one Adam
    step on :func:`flow_matching_loss`. With ``cosine_decay`` the learning rate follows
    :math:`\eta_k = \frac{\eta}{2}(1 + \cos(\pi k / K))`, which lowers the noise of the
    last steps. Deterministic under ``seed`` on a given device; torch's global random
    state is left as it was.

    Args:
        model: a :class:`~flowcourse.core.Flow` of a
            :class:`~flowcourse.continuous.ContinuousFlow`, the ``ContinuousFlow``, or its
            velocity field; it is moved to ``device`` and left there in eval mode.
        train_data: ``(N, D)`` float tensor (or what ``preprocess`` turns into one).
        preprocess: ``(batch, generator) -> (inputs, log_abs_det)``, as for
            :func:`flowcourse.training.fit`.

    Returns:
        A :class:`FlowMatchingHistory`.
    """
    velocity = _velocity_of(model)
    train_data = check_tensor(train_data, "train_data")
    if train_data.dim() < 2 or len(train_data) == 0:
        raise ValueError(
            f"expected train_data of shape (N, D) with N >= 1, got {tuple(train_data.shape)}"
        )
    check_positive_int(steps, "steps")
    check_positive_int(batch_size, "batch_size")
    check_positive_float(learning_rate, "learning_rate")
    if max_grad_norm is not None:
        check_positive_float(max_grad_norm, "max_grad_norm")
    if preprocess is not None and not callable(preprocess):
        raise TypeError(f"expected preprocess to be callable, got {type(preprocess).__name__}")
    parameters = [p for p in velocity.parameters() if p.requires_grad]
    if not parameters:
        raise ValueError(
            "expected a velocity field with trainable parameters, "
            f"got {type(velocity).__name__} with none"
        )

    device = pick_device(device)
    velocity.to(device)
    dtype = parameters[0].dtype
    history = FlowMatchingHistory()
    start = time.perf_counter()
    with seeded(seed, device):
        shuffle = torch.Generator().manual_seed(seed)
        noise = torch.Generator(device=device).manual_seed(seed)
        optimizer = torch.optim.Adam(parameters, lr=learning_rate)
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda k: 0.5 * (1 + math.cos(math.pi * k / steps)) if cosine_decay else 1.0
        )
        velocity.train()
        order = torch.randperm(len(train_data), generator=shuffle)
        position = 0
        bar = tqdm(range(steps), desc="flow matching", unit="step", disable=not progress)
        for step in bar:
            if position + batch_size > len(order) and position > 0:
                order, position = torch.randperm(len(train_data), generator=shuffle), 0
            indices = order[position : position + batch_size]
            position += batch_size
            batch = train_data[indices.to(train_data.device)].to(device=device, dtype=dtype)
            if preprocess is not None:
                batch, _ = preprocess(batch, noise)
            loss = flow_matching_loss(velocity, batch.reshape(len(batch), -1), noise)
            loss_value = float(loss.detach())
            if not math.isfinite(loss_value):
                raise RuntimeError(
                    f"the flow-matching loss became {loss_value} at step {step}: "
                    "lower learning_rate"
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if max_grad_norm is not None:
                nn.utils.clip_grad_norm_(parameters, max_grad_norm)
            optimizer.step()
            schedule.step()
            history.step_loss.append(loss_value)
            history.steps += 1
            if step % 50 == 0:
                bar.set_postfix(loss=f"{loss_value:.3f}")
        bar.close()
    model.to(device).eval()  # the velocity field is model itself or one of its parts
    history.seconds = time.perf_counter() - start
    return history
