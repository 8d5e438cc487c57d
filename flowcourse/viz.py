r"""Figures for the book: densities, samples, layer-by-layer maps, MADE masks, image grids.

Every function draws with matplotlib, gives each panel a title and labelled axes, and
returns the :class:`~matplotlib.figure.Figure` so that a notebook can assert on what
was drawn. Nothing here changes a model: evaluation runs under ``torch.no_grad`` on
the model's own device and dtype, and the model's train/eval mode is left alone.

Direction: as everywhere in the package, a transform's ``forward`` maps data to noise,
so :func:`plot_layers` shows a point cloud travelling from data space to noise space.

Example:
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from flowcourse.core import Compose, Flow, StandardNormal
    >>> from flowcourse.viz import plot_density_and_samples
    >>> figure = plot_density_and_samples(Flow(Compose(), StandardNormal(2)), resolution=50)
    >>> [axes.get_title() for axes in figure.axes[:2]]
    ['density p(x)', 'samples (temperature 1)']
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from torch import Tensor, nn

from flowcourse.core import Compose, Flow, Transform
from flowcourse.validation import check_int

__all__ = [
    "density_on_grid",
    "grid_lines",
    "plot_density_and_samples",
    "plot_layers",
    "plot_made_connectivity",
    "plot_image_grid",
    "plot_samples_at_temperatures",
]

Bounds = tuple[float, float]


# ----------------------------------------------------------------------------- helpers


def _device_and_dtype(obj: object) -> tuple[torch.device, torch.dtype]:
    """Where a model computes: its first parameter (or floating buffer), else the defaults."""
    if isinstance(obj, nn.Module):
        reference = next(iter(obj.parameters()), None)
        if reference is None:
            reference = next((b for b in obj.buffers() if b.is_floating_point()), None)
        if reference is not None:
            return reference.device, reference.dtype
    return torch.device("cpu"), torch.get_default_dtype()


def _check_bounds(bounds: Bounds) -> Bounds:
    try:
        low, high = (float(b) for b in bounds)
    except (TypeError, ValueError):
        raise TypeError(f"expected bounds to be a pair (low, high), got {bounds!r}") from None
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise ValueError(f"expected finite bounds with low < high, got ({low}, {high})")
    return low, high


def _check_temperature(temperature: float) -> float:
    if not isinstance(temperature, (int, float)) or not temperature > 0:
        raise ValueError(f"expected a positive temperature, got {temperature!r}")
    return float(temperature)


def _log_prob_function(density: object) -> Callable[[Tensor], Tensor]:
    log_prob = getattr(density, "log_prob", None)
    if log_prob is None and callable(density) and not isinstance(density, nn.Module):
        log_prob = density
    if log_prob is None:
        raise TypeError(
            "expected a flow or density with a log_prob method, or a function from (N, 2) "
            f"points to (N,) log-densities, got {type(density).__name__}"
        )
    return log_prob


def _draw_samples(model: object, num_samples: int, temperature: float) -> Tensor:
    sample = getattr(model, "sample", None)
    if sample is None:
        raise TypeError(
            f"expected a model with a sample method to draw samples from, got "
            f"{type(model).__name__}; pass num_samples=0 to plot only the density"
        )
    with torch.no_grad():
        # Only ask for a temperature when it matters: data sets sample without one.
        if temperature == 1.0:
            return sample(num_samples)
        return sample(num_samples, temperature=temperature)


def _label_2d(axes: Axes, symbol: str) -> None:
    axes.set_xlabel(f"${symbol}_1$")
    axes.set_ylabel(f"${symbol}_2$")


# ----------------------------------------------------------------------------- densities


def grid_lines(bounds: Bounds = (-3.0, 3.0), num_lines: int = 11, resolution: int = 60) -> Tensor:
    r"""A square grid as polylines: shape ``(2 * num_lines, resolution, 2)``.

    The first ``num_lines`` polylines are horizontal (constant :math:`x_2`), the rest
    vertical. Pass the result to :func:`plot_layers` to watch a flow bend the grid, as in
    the chapter *Change of variables*.

    Example:
        >>> grid_lines((-1, 1), num_lines=3, resolution=5).shape
        torch.Size([6, 5, 2])
    """
    low, high = _check_bounds(bounds)
    check_int(num_lines, "num_lines", 2)
    check_int(resolution, "resolution", 2)
    levels = torch.linspace(low, high, num_lines)
    along = torch.linspace(low, high, resolution)
    horizontal = torch.stack(torch.broadcast_tensors(along[None, :], levels[:, None]), dim=-1)
    vertical = torch.stack(torch.broadcast_tensors(levels[:, None], along[None, :]), dim=-1)
    return torch.cat([horizontal, vertical])


def density_on_grid(
    flow_or_density: object, bounds: Bounds = (-4.0, 4.0), resolution: int = 200
) -> tuple[Tensor, Tensor]:
    r"""Evaluate :math:`p(x) = \exp \log p(x)` at the centres of a grid of
    ``resolution`` x ``resolution`` cells.

    ``flow_or_density`` is anything with a ``log_prob`` method taking ``(N, 2)`` points
    (a :class:`~flowcourse.core.Flow`, a toy data set), or such a function itself.
    Returns ``(axis, density)``: ``axis`` holds the ``resolution`` cell centres on
    ``bounds`` and ``density[i, j]`` is :math:`p(x_1 = \text{axis}_j, x_2 = \text{axis}_i)`,
    the row-major layout of an image whose rows run along :math:`x_2`. The cell centres
    make ``density.sum() * step**2`` the midpoint rule for :math:`\int p(x)\,dx`. Used in
    *Generative models* to compare densities and to integrate them over histogram bins.

    Example:
        >>> from flowcourse.core import Compose, Flow, StandardNormal
        >>> axis, density = density_on_grid(Flow(Compose(), StandardNormal(2)), (-6, 6), 300)
        >>> step = float(axis[1] - axis[0])
        >>> round(float(density.sum()) * step**2, 3)
        1.0
    """
    low, high = _check_bounds(bounds)
    check_int(resolution, "resolution", 2)
    log_prob = _log_prob_function(flow_or_density)
    device, dtype = _device_and_dtype(flow_or_density)
    step = (high - low) / resolution
    axis = low + step * (0.5 + torch.arange(resolution, device=device, dtype=dtype))
    x2, x1 = torch.meshgrid(axis, axis, indexing="ij")
    points = torch.stack([x1.reshape(-1), x2.reshape(-1)], dim=1)
    with torch.no_grad():
        # Chunks keep memory flat for fine grids and large models.
        values = torch.cat([log_prob(chunk).exp() for chunk in points.split(65536)])
    if values.shape != (points.shape[0],):
        raise ValueError(
            f"expected log_prob to return shape ({points.shape[0]},) for {points.shape[0]} "
            f"points, got {tuple(values.shape)}"
        )
    return axis.cpu(), values.reshape(resolution, resolution).cpu()


def plot_density_and_samples(
    flow_or_density: object,
    bounds: Bounds = (-4.0, 4.0),
    resolution: int = 200,
    num_samples: int = 1000,
    temperature: float = 1.0,
    title: str | None = None,
) -> Figure:
    r"""The two jobs of a generative model side by side: density evaluation and sampling.

    Left, a heatmap of :math:`p(x) = \exp \log p(x)` on a grid over ``bounds``² (see
    :func:`density_on_grid`); right, a scatter of ``num_samples`` samples drawn at
    ``temperature`` on the same axes. With ``num_samples=0`` only the heatmap is drawn,
    so a plain log-density function works too. Taught in *Generative models*.

    Returns the figure; ``figure.axes`` is ``[density, samples, colour bar]`` (or
    ``[density, colour bar]``), and the heatmap is ``figure.axes[0].images[0]``.

    Example:
        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> from flowcourse.core import Compose, Flow, StandardNormal
        >>> figure = plot_density_and_samples(Flow(Compose(), StandardNormal(2)), num_samples=50)
        >>> len(figure.axes)
        3
    """
    low, high = _check_bounds(bounds)
    check_int(num_samples, "num_samples", 0)
    temperature = _check_temperature(temperature)
    axis, density = density_on_grid(flow_or_density, (low, high), resolution)

    num_panels = 2 if num_samples > 0 else 1
    figure, panels = plt.subplots(1, num_panels, figsize=(4.6 * num_panels, 4), squeeze=False)
    density_axes = panels[0, 0]
    image = density_axes.imshow(
        density.numpy(), origin="lower", extent=(low, high, low, high), cmap="viridis"
    )
    density_axes.set_title("density p(x)")
    _label_2d(density_axes, "x")
    figure.colorbar(image, ax=list(panels.flat), label="p(x) (probability per unit area)")

    if num_samples > 0:
        samples = _draw_samples(flow_or_density, num_samples, temperature)
        samples = samples.detach().cpu().numpy()
        if samples.ndim != 2 or samples.shape[1] != 2:
            raise ValueError(f"expected samples of shape (N, 2), got {tuple(samples.shape)}")
        sample_axes = panels[0, 1]
        sample_axes.scatter(samples[:, 0], samples[:, 1], s=3, alpha=0.5, color="tab:blue")
        sample_axes.set_xlim(low, high)
        sample_axes.set_ylim(low, high)
        sample_axes.set_aspect("equal")
        sample_axes.set_title(f"samples (temperature {temperature:g})")
        _label_2d(sample_axes, "x")
    if title is not None:
        figure.suptitle(title)
    return figure


# ----------------------------------------------------------------------------- layers


def _layers_of(flow: object) -> list[Transform]:
    transform = flow.transform if isinstance(flow, Flow) else flow
    if isinstance(transform, Compose):
        return list(transform.transforms)
    if isinstance(transform, Transform):
        return [transform]
    raise TypeError(f"expected a Flow, a Compose or a Transform, got {type(flow).__name__}")


def plot_layers(
    flow: Flow | Transform,
    points_or_grid: Tensor,
    max_columns: int = 4,
    title: str | None = None,
) -> Figure:
    r"""Follow points through a flow, one layer at a time, from data to noise.

    For :math:`f = f_K \circ \dots \circ f_1` the panels show
    :math:`h_0 = x`, :math:`h_k = f_k(h_{k-1})`, ..., :math:`h_K = z`: one panel for the
    input and one per layer of the top-level :class:`~flowcourse.core.Compose`.
    ``points_or_grid`` is a point cloud of shape ``(N, 2)``, coloured by its first
    coordinate so each point can be followed, or polylines of shape
    ``(lines, points, 2)`` such as :func:`grid_lines`, drawn as lines. Taught in
    *Change of variables*.

    Example:
        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> from flowcourse.core import Compose
        >>> len(plot_layers(Compose(Compose(), Compose()), torch.randn(20, 2)).axes)
        3
    """
    layers = _layers_of(flow)
    check_int(max_columns, "max_columns", 1)
    if not isinstance(points_or_grid, Tensor):
        raise TypeError(
            f"expected points_or_grid to be a torch.Tensor, got {type(points_or_grid).__name__}"
        )
    is_grid = points_or_grid.dim() == 3
    if points_or_grid.dim() not in (2, 3) or points_or_grid.shape[-1] != 2:
        raise ValueError(
            "expected points of shape (N, 2) or a grid of shape (lines, points, 2), "
            f"got {tuple(points_or_grid.shape)}"
        )
    device, dtype = _device_and_dtype(flow)
    h = points_or_grid.reshape(-1, 2).to(device=device, dtype=dtype)
    stages = [h]
    with torch.no_grad():
        for layer in layers:
            h, _ = layer(h)
            stages.append(h)

    num_panels = len(stages)
    rows = math.ceil(num_panels / max_columns)
    columns = math.ceil(num_panels / rows)  # balanced rows: 5 panels as 3 + 2, not 4 + 1
    figure = plt.figure(figsize=(3.2 * columns, 3.2 * rows), layout="constrained")
    colour = points_or_grid.reshape(-1, 2)[:, 0].detach().cpu().numpy()
    for k, stage in enumerate(stages):
        axes = figure.add_subplot(rows, columns, k + 1)
        values = stage.detach().cpu().numpy()
        if is_grid:
            lines = values.reshape(points_or_grid.shape)
            half = lines.shape[0] // 2
            axes.add_collection(LineCollection(lines[:half], colors="tab:blue", linewidths=0.8))
            axes.add_collection(LineCollection(lines[half:], colors="tab:orange", linewidths=0.8))
            axes.autoscale()
        else:
            axes.scatter(values[:, 0], values[:, 1], c=colour, cmap="coolwarm", s=4)
        axes.set_aspect("equal", adjustable="datalim")
        if k == 0:
            axes.set_title("data x")
            _label_2d(axes, "x")
        else:
            name = type(layers[k - 1]).__name__
            suffix = " = z (noise)" if k == num_panels - 1 else ""
            axes.set_title(f"after layer {k}: {name}{suffix}", fontsize=9)
            _label_2d(axes, "z" if k == num_panels - 1 else "h")
    figure.suptitle(title or "forward pass, data to noise")
    return figure


# ----------------------------------------------------------------------------- MADE


def plot_made_connectivity(
    masks: Sequence[Tensor | np.ndarray],
    degrees: Sequence[Tensor | np.ndarray] | None = None,
    title: str = "MADE connectivity",
) -> Figure:
    r"""Draw a masked network: units as dots, one line per connection the masks allow.

    ``masks[l]`` has the shape of ``nn.Linear.weight`` of layer ``l``,
    ``(out_features, in_features)``, and entry :math:`M^{(l)}_{ij} = 1` draws an edge from
    unit ``j`` of layer ``l`` to unit ``i`` of layer ``l + 1`` (inputs at the bottom,
    outputs at the top). MADE (Germain et al. 2015) sets
    :math:`M_{ij} = [m_{l+1}(i) \ge m_l(j)]` on hidden layers and a strict :math:`>` on
    the output layer; pass the degrees :math:`m_l` (one 1-D array per layer of units,
    ``len(masks) + 1`` of them) to colour and number the units. Each layer's edges are
    one :class:`~matplotlib.collections.LineCollection` (the first ``len(masks)`` entries of
    ``figure.axes[0].collections``), so the number of segments equals the number of ones
    in the masks. Taught in *MADE*.

    Example:
        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> masks = [torch.tensor([[1, 0], [1, 1]]), torch.tensor([[0, 0], [1, 0]])]
        >>> edges = plot_made_connectivity(masks).axes[0].collections[: len(masks)]
        >>> sum(len(layer.get_segments()) for layer in edges)
        4
    """
    if isinstance(masks, (Tensor, np.ndarray)) or len(masks) == 0:
        raise TypeError("expected masks to be a non-empty list of 2-D mask matrices")
    matrices = [torch.as_tensor(np.asarray(m)) if not isinstance(m, Tensor) else m for m in masks]
    matrices = [m.detach().cpu() for m in matrices]
    for l, mask in enumerate(matrices):
        if mask.dim() != 2:
            raise ValueError(
                f"expected masks[{l}] of shape (out_features, in_features), got {tuple(mask.shape)}"
            )
        if not bool(((mask == 0) | (mask == 1)).all()):
            raise ValueError(f"expected masks[{l}] to hold only zeros and ones")
        if l > 0 and mask.shape[1] != matrices[l - 1].shape[0]:
            raise ValueError(
                f"expected masks[{l}] to have {matrices[l - 1].shape[0]} inputs (the outputs "
                f"of masks[{l - 1}]), got shape {tuple(mask.shape)}"
            )
    widths = [matrices[0].shape[1]] + [m.shape[0] for m in matrices]
    if degrees is not None:
        degrees = [np.asarray(torch.as_tensor(np.asarray(d)).cpu()).reshape(-1) for d in degrees]
        if len(degrees) != len(widths) or any(
            len(d) != w for d, w in zip(degrees, widths, strict=False)
        ):
            raise ValueError(
                f"expected one degree per unit, layer sizes {widths}, got sizes "
                f"{[len(d) for d in degrees]}"
            )

    # Centre every layer so narrow layers sit under wide ones.
    positions = [np.arange(w) - (w - 1) / 2 for w in widths]
    figure, axes = plt.subplots(figsize=(max(4.0, 0.45 * max(widths) + 1.5), 1.3 * len(widths)))
    for l, mask in enumerate(matrices):
        rows, cols = np.nonzero(mask.numpy())
        segments = [
            [(positions[l][j], l), (positions[l + 1][i], l + 1)]
            for i, j in zip(rows.tolist(), cols.tolist(), strict=True)
        ]
        axes.add_collection(LineCollection(segments, colors="0.55", linewidths=0.7, zorder=1))
    shared_scale = {}
    if degrees is not None:
        shared_scale = {
            "vmin": min(d.min() for d in degrees),
            "vmax": max(d.max() for d in degrees),
        }
    for l, x in enumerate(positions):
        if degrees is None:
            axes.scatter(x, np.full_like(x, l), color="black", s=60, zorder=2)
        else:
            axes.scatter(
                x, np.full_like(x, l), c=degrees[l], cmap="viridis", s=60, zorder=2, **shared_scale
            )
        if degrees is not None and widths[l] <= 40:
            for position, degree in zip(x, degrees[l], strict=True):
                axes.annotate(
                    f"{degree:g}",
                    (position, l),
                    textcoords="offset points",
                    xytext=(0, 7),
                    ha="center",
                    fontsize=7,
                )
    names = ["inputs"] + [f"hidden {l}" for l in range(1, len(matrices))] + ["outputs"]
    axes.set_yticks(range(len(widths)), names)
    axes.set_xticks([])
    axes.set_ylim(-0.5, len(widths) - 0.5)
    axes.set_xlim(-max(widths) / 2, max(widths) / 2)
    axes.set_xlabel("units (numbers: degrees)" if degrees is not None else "units")
    axes.set_ylabel("layer")
    axes.set_title(title)
    figure.tight_layout()
    return figure


# ----------------------------------------------------------------------------- images


def _mosaic(images: np.ndarray, nrow: int, padding: int) -> np.ndarray:
    """Tile ``(N, C, H, W)`` values in [0, 1] into one ``(rows, cols[, 3])`` picture."""
    count, channels, height, width = images.shape
    columns = min(nrow, count)
    rows = math.ceil(count / columns)
    # White (1.0) between tiles and in empty slots.
    canvas = np.ones(
        (channels, rows * (height + padding) + padding, columns * (width + padding) + padding)
    )
    for index, image in enumerate(images):
        top = padding + (index // columns) * (height + padding)
        left = padding + (index % columns) * (width + padding)
        canvas[:, top : top + height, left : left + width] = image
    return canvas[0] if channels == 1 else canvas.transpose(1, 2, 0)


def plot_image_grid(
    images: Tensor,
    nrow: int = 8,
    title: str = "images",
    value_range: Bounds | None = None,
    padding: int = 1,
    ax: Axes | None = None,
) -> Figure:
    r"""Show ``(N, C, H, W)`` images (``C`` is 1 or 3) as one tiled picture.

    Pixel values are mapped linearly from ``value_range`` (default: the images' own
    minimum and maximum) onto [0, 1] and clipped, so images that share a
    ``value_range`` share a grey scale. ``nrow`` images go in a row. Draws into ``ax``
    when given. Taught in *RealNVP* and *Glow*.

    Example:
        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> figure = plot_image_grid(torch.rand(10, 1, 8, 8), nrow=5, padding=0)
        >>> figure.axes[0].images[0].get_array().shape
        (16, 40)
    """
    if not isinstance(images, Tensor):
        raise TypeError(f"expected images to be a torch.Tensor, got {type(images).__name__}")
    if images.dim() != 4 or images.shape[1] not in (1, 3) or images.shape[0] == 0:
        raise ValueError(
            f"expected images of shape (N, 1 or 3, height, width) with N >= 1, "
            f"got {tuple(images.shape)}"
        )
    check_int(nrow, "nrow", 1)
    check_int(padding, "padding", 0)
    values = images.detach().cpu().double().numpy()
    if not np.isfinite(values).all():
        raise ValueError(
            f"expected finite pixel values, got {int((~np.isfinite(values)).sum())} NaN or inf"
        )
    low, high = (values.min(), values.max()) if value_range is None else _check_bounds(value_range)
    values = np.clip((values - low) / max(high - low, 1e-12), 0.0, 1.0)
    picture = _mosaic(values, nrow, padding)

    if ax is None:
        width = max(2.5, min(10.0, 0.5 * min(nrow, len(values))))
        figure, ax = plt.subplots(
            figsize=(width, width * picture.shape[0] / picture.shape[1] + 0.7), layout="tight"
        )
    else:
        figure = ax.figure
    ax.imshow(picture, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    height, width = images.shape[2:]
    ax.set_xlabel(f"{len(values)} images of {height}x{width} pixels", fontsize=8)
    ax.set_title(title)
    return figure


def plot_samples_at_temperatures(
    flow: Flow,
    temperatures: Sequence[float],
    num_samples: int = 16,
    nrow: int = 4,
    seed: int = 0,
    value_range: Bounds | None = None,
    postprocess: Callable[[Tensor], Tensor] | None = None,
) -> Figure:
    r"""Image samples drawn at several temperatures, one panel per temperature.

    A temperature :math:`T` samples :math:`z \sim \mathcal{N}(0, T^2 I)` and returns
    :math:`x = f^{-1}(z)`: lower temperatures trade variety for cleaner samples
    (Glow, Kingma & Dhariwal 2018, Sec. 5). Every panel reuses the same noise (``seed``),
    scaled by its temperature, so the panels show the same samples. ``postprocess``
    maps samples to pixel space (for example, undoing a logit transform); the panels
    share one grey scale, ``value_range`` or the range of all samples. Taught in *Glow*.

    Example:
        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> from flowcourse.core import Compose, Flow, StandardNormal
        >>> flow = Flow(Compose(), StandardNormal((1, 4, 4)))
        >>> len(plot_samples_at_temperatures(flow, [0.5, 1.0], num_samples=4).axes)
        2
    """
    if not hasattr(flow, "sample"):
        raise TypeError(f"expected a flow with a sample method, got {type(flow).__name__}")
    temperatures = [_check_temperature(t) for t in temperatures]
    if not temperatures:
        raise ValueError("expected at least one temperature, got none")
    check_int(num_samples, "num_samples", 1)
    device, _ = _device_and_dtype(flow)
    batches = []
    for temperature in temperatures:
        devices = [device] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            with torch.no_grad():
                samples = flow.sample(num_samples, temperature=temperature)
                if postprocess is not None:
                    samples = postprocess(samples)
        batches.append(samples.detach().cpu())
    if value_range is None:
        value_range = (
            min(float(b.min()) for b in batches),
            max(float(b.max()) for b in batches),
        )
        if value_range[0] == value_range[1]:
            value_range = (value_range[0], value_range[0] + 1.0)

    columns = min(nrow, num_samples)
    aspect = math.ceil(num_samples / columns) / columns  # rows of tiles per column of tiles
    figure, panels = plt.subplots(
        1, len(temperatures), figsize=(2.6 * len(temperatures), 2.6 * aspect + 1.0), squeeze=False
    )
    for axes, temperature, samples in zip(panels[0], temperatures, batches, strict=True):
        plot_image_grid(
            samples, nrow=nrow, title=f"T = {temperature:g}", value_range=value_range, ax=axes
        )
    figure.suptitle("samples at several temperatures")
    figure.tight_layout()
    return figure
