"""Time flowcourse against zuko, nflows and normflows on the same models.

For every model (MAF with 5 layers, a RealNVP of 6 affine couplings; conditioners with
two hidden layers of 64 units), every dimension ``D`` and every library, it times

* ``log_prob`` forward + backward on a batch (what one training step costs), and
* ``sample`` of a batch (no gradient),

takes the median over repeats, and prints a table of absolute times and ratios
relative to flowcourse (``2.0x`` = twice as slow as flowcourse). The libraries take
turns inside each repeat, in a shuffled order, so a noisy neighbour on the machine
slows them all alike. The table also goes to ``benchmarks/results.md`` with the
machine and the date.

Run it with ``make benchmark`` or ``.venv/bin/python benchmarks/run.py`` after
``.venv/bin/pip install -r requirements-bench.txt``; a library that is not installed is
skipped with a note.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib.metadata
import os
import platform
import random
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

__all__ = ["Model", "build", "main"]

NUM_MAF_LAYERS = 5
NUM_COUPLING_LAYERS = 6
HIDDEN_FEATURES = 64  # two hidden layers of this width in every conditioner


@dataclass
class Model:
    """A library's model reduced to the two calls the benchmark times."""

    module: nn.Module
    log_prob: Callable[[Tensor], Tensor]
    sample: Callable[[int], Tensor]


# ---------------------------------------------------------------------------- flowcourse


def _flowcourse(kind: str, features: int) -> Model:
    from flowcourse import models

    if kind == "MAF":
        flow = models.maf(
            features=features, num_layers=NUM_MAF_LAYERS, hidden_features=HIDDEN_FEATURES
        )
    else:
        flow = models.realnvp(
            features=features, num_layers=NUM_COUPLING_LAYERS, hidden_features=HIDDEN_FEATURES
        )
    return Model(flow, flow.log_prob, flow.sample)


@contextlib.contextmanager
def _validation_off() -> Iterator[None]:
    from flowcourse.validation import set_validation, validation_enabled

    previous = validation_enabled()
    set_validation(False)
    try:
        yield
    finally:
        set_validation(previous)


def _flowcourse_unchecked(kind: str, features: int) -> Model:
    # The same model with the finiteness checks off (set_validation(False)): shows what
    # the checks cost.
    model = _flowcourse(kind, features)

    def log_prob(x: Tensor) -> Tensor:
        with _validation_off():
            return model.log_prob(x)

    def sample(n: int) -> Tensor:
        with _validation_off():
            return model.sample(n)

    return Model(model.module, log_prob, sample)


# ---------------------------------------------------------------------------------- zuko


def _zuko(kind: str, features: int) -> Model:
    import zuko

    hidden = (HIDDEN_FEATURES, HIDDEN_FEATURES)
    if kind == "MAF":
        # Orders alternate between ascending and descending, like a reversal between layers.
        flow = zuko.flows.MAF(features, transforms=NUM_MAF_LAYERS, hidden_features=hidden)
    else:
        flow = zuko.flows.RealNVP(features, transforms=NUM_COUPLING_LAYERS, hidden_features=hidden)
    return Model(flow, lambda x: flow().log_prob(x), lambda n: flow().sample((n,)))


# -------------------------------------------------------------------------------- nflows


class _NflowsConditioner(nn.Module):
    """nflows' MLP, accepting the ``context`` argument nflows' couplings pass to it."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        from nflows.nn import nets

        self.net = nets.MLP((in_features,), (out_features,), [HIDDEN_FEATURES] * 2)

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        return self.net(x)


def _nflows(kind: str, features: int) -> Model:
    from nflows import distributions, flows, transforms

    if kind == "MAF":
        # One feed-forward block, no residual blocks: the same matrix shapes as a MADE
        # with two hidden layers (in -> 64, 64 -> 64, 64 -> out).
        flow = flows.MaskedAutoregressiveFlow(
            features,
            hidden_features=HIDDEN_FEATURES,
            num_layers=NUM_MAF_LAYERS,
            num_blocks_per_layer=1,
            use_residual_blocks=False,
        )
    else:
        layers = []
        for i in range(NUM_COUPLING_LAYERS):
            mask = (torch.arange(features) + i) % 2 * 2 - 1  # +1: transformed, -1: kept

            layers.append(transforms.AffineCouplingTransform(mask, _NflowsConditioner))
        flow = flows.Flow(
            transforms.CompositeTransform(layers), distributions.StandardNormal([features])
        )
    return Model(flow, flow.log_prob, flow.sample)


# ----------------------------------------------------------------------------- normflows


def _normflows(kind: str, features: int) -> Model:
    import normflows as nf

    layers: list[nn.Module] = []
    if kind == "MAF":
        for _ in range(NUM_MAF_LAYERS):
            layer = nf.flows.MaskedAffineAutoregressive(
                features, HIDDEN_FEATURES, num_blocks=1, use_residual_blocks=False
            )
            # normflows layers map noise to data, and this one is one pass in that
            # direction: used as is, it scores data in D passes (an IAF). Reversed, it is
            # a MAF like the others: one pass to score, D passes to sample.
            layers.append(nf.flows.Reverse(layer))
            layers.append(nf.flows.Permute(features, mode="swap"))
    else:
        kept = (features + 1) // 2  # normflows splits with chunk(2): the first half is larger
        for _ in range(NUM_COUPLING_LAYERS):
            net = nf.nets.MLP(
                [kept, HIDDEN_FEATURES, HIDDEN_FEATURES, 2 * (features - kept)], init_zeros=True
            )
            layers.append(nf.flows.AffineCouplingBlock(net))
            layers.append(nf.flows.Permute(features, mode="swap"))
    flow = nf.NormalizingFlow(
        q0=nf.distributions.DiagGaussian(features, trainable=False), flows=layers
    )
    return Model(flow, flow.log_prob, lambda n: flow.sample(n)[0])


LIBRARIES: dict[str, Callable[[str, int], Model]] = {
    "flowcourse": _flowcourse,
    "flowcourse (checks off)": _flowcourse_unchecked,
    "zuko": _zuko,
    "nflows": _nflows,
    "normflows": _normflows,
}
DISTRIBUTIONS = {"zuko": "zuko", "nflows": "nflows", "normflows": "normflows"}


def build(library: str, kind: str, features: int, seed: int = 0) -> Model:
    """Build ``kind`` (``"MAF"`` or ``"RealNVP"``) on ``features`` dimensions in ``library``."""
    torch.manual_seed(seed)
    return LIBRARIES[library](kind, features)


def _time_log_prob(model: Model, x: Tensor) -> float:
    model.module.zero_grad(set_to_none=True)
    start = time.perf_counter()
    loss = -model.log_prob(x).mean()
    loss.backward()
    return time.perf_counter() - start


def _time_sample(model: Model, num_samples: int) -> float:
    start = time.perf_counter()
    with torch.no_grad():
        model.sample(num_samples)
    return time.perf_counter() - start


OPERATIONS: dict[str, Callable[[Model, Tensor], float]] = {
    "log_prob fwd+bwd": _time_log_prob,
    "sample": lambda model, x: _time_sample(model, x.shape[0]),
}


def cross_check_nice(features: int = 4, num_layers: int = 4, seed: int = 0) -> float:
    """Largest |difference| between flowcourse's and nflows' NICE log-densities (float64).

    NICE's parametrisation can be matched exactly: nflows' additive coupling gets the
    weights of flowcourse's conditioner (its first layer restricted to the kept features,
    its last to the transformed ones) and a pointwise scaling by :math:`e^{s}`. The two
    implementations share no code, so agreement to round-off checks the bookkeeping of
    both (masks, shifts, log-determinants, base density).
    """
    from nflows import distributions, flows, transforms
    from nflows.nn import nets

    from flowcourse import models

    torch.manual_seed(seed)
    flow = models.nice(features, num_layers=num_layers, hidden_features=16, seed=seed).double()
    with torch.no_grad():
        for parameter in flow.parameters():  # leave the identity: random weights everywhere
            parameter.normal_(0.0, 0.3)

    layers = []
    for coupling in flow.transform[:-1]:
        kept = coupling.mask.nonzero().flatten()
        moved = (~coupling.mask).nonzero().flatten()
        linears = [m for m in coupling.conditioner if isinstance(m, nn.Linear)]
        net = nets.MLP((len(kept),), (len(moved),), [16] * (len(linears) - 1)).double()
        with torch.no_grad():
            net._input_layer.weight.copy_(linears[0].weight[:, kept])
            net._input_layer.bias.copy_(linears[0].bias)
            for theirs, ours in zip(net._hidden_layers, linears[1:-1], strict=True):
                theirs.load_state_dict(ours.state_dict())
            net._output_layer.weight.copy_(linears[-1].weight[moved])
            net._output_layer.bias.copy_(linears[-1].bias[moved])
        mask = torch.where(coupling.mask, -1, 1)  # nflows: +1 transformed, -1 kept

        def conditioner(in_features: int, out_features: int, net: nn.Module = net) -> nn.Module:
            return _ContextFree(net)

        layers.append(transforms.AdditiveCouplingTransform(mask, conditioner))
    scale = flow.transform[-1].log_scale.detach().exp()
    layers.append(transforms.PointwiseAffineTransform(shift=0.0, scale=scale))
    reference = flows.Flow(
        transforms.CompositeTransform(layers), distributions.StandardNormal([features])
    ).double()

    x = 2 * torch.randn(256, features, dtype=torch.float64)
    with torch.no_grad():
        return float((flow.log_prob(x) - reference.log_prob(x)).abs().max())


class _ContextFree(nn.Module):
    """Drop the ``context`` argument nflows passes to a coupling's network."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        return self.net(x)


def _available(libraries: list[str]) -> tuple[list[str], list[str]]:
    kept, notes = [], []
    for library in libraries:
        if library not in LIBRARIES:
            raise SystemExit(f"unknown library {library!r}; choose from {sorted(LIBRARIES)}")
        try:
            build(library, "MAF", 2)
        except ImportError as error:
            notes.append(f"{library} skipped: {error} (pip install -r requirements-bench.txt)")
            continue
        kept.append(library)
    return kept, notes


def _version(library: str) -> str:
    name = DISTRIBUTIONS.get(library, "flowcourse")
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "?"


def _cpu_name() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def run(
    libraries: list[str],
    kinds: list[str],
    dims: list[int],
    batch_size: int,
    repeats: int,
    warmup: int,
    seed: int,
) -> list[dict[str, object]]:
    """Median seconds per call for every (model, D, operation, library)."""
    rows = []
    rng = random.Random(seed)
    for kind in kinds:
        for features in dims:
            models = {library: build(library, kind, features, seed) for library in libraries}
            x = torch.randn(batch_size, features, generator=torch.Generator().manual_seed(seed))
            for operation, timer in OPERATIONS.items():
                times: dict[str, list[float]] = {library: [] for library in libraries}
                for step in range(warmup + repeats):
                    order = list(libraries)
                    rng.shuffle(order)  # interleave so that machine noise hits everyone
                    for library in order:
                        elapsed = timer(models[library], x)
                        if step >= warmup:
                            times[library].append(elapsed)
                rows.append(
                    {
                        "model": kind,
                        "D": features,
                        "operation": operation,
                        **{library: statistics.median(times[library]) for library in libraries},
                    }
                )
                print(_format_row(rows[-1], libraries), flush=True)
            # Same architecture, same size: the parameter counts should agree.
            counts = {
                library: sum(p.numel() for p in model.module.parameters())
                for library, model in models.items()
            }
            rows.append({"model": kind, "D": features, "operation": "parameters", **counts})
            print(_format_row(rows[-1], libraries), flush=True)
    return rows


def _format_row(row: dict[str, object], libraries: list[str]) -> str:
    cells = [str(row["model"]), str(row["D"]), str(row["operation"])]
    if row["operation"] == "parameters":
        return "| " + " | ".join(cells + [f"{row[library]:,}" for library in libraries]) + " |"
    reference = row.get("flowcourse")
    for library in libraries:
        seconds = float(row[library])  # type: ignore[arg-type]
        cell = f"{1000 * seconds:.2f} ms"
        if reference and library != "flowcourse":
            cell += f" ({seconds / float(reference):.2f}x)"  # type: ignore[arg-type]
        cells.append(cell)
    return "| " + " | ".join(cells) + " |"


def _table(rows: list[dict[str, object]], libraries: list[str]) -> str:
    header = ["model", "D", "operation", *libraries]
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] * 3 + ["---:"] * len(libraries)) + "|",
    ]
    lines += [_format_row(row, libraries) for row in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--libraries", nargs="+", default=list(LIBRARIES))
    parser.add_argument("--models", nargs="+", default=["MAF", "RealNVP"])
    parser.add_argument("--dims", nargs="+", type=int, default=[2, 8, 32])
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--output", type=Path, default=Path(__file__).resolve().parent / "results.md"
    )
    args = parser.parse_args(argv)
    for kind in args.models:
        if kind not in ("MAF", "RealNVP"):
            raise SystemExit(f"unknown model {kind!r}; choose from MAF, RealNVP")

    # One thread by default: timings on a shared machine are steadier, and the models are
    # small enough that the per-call overhead (what differs between libraries) dominates.
    torch.set_num_threads(args.threads)
    libraries, notes = _available(args.libraries)
    for note in notes:
        print(note)
    if "flowcourse" not in libraries:
        raise SystemExit("flowcourse is needed as the reference")

    load_before = os.getloadavg()[0]
    header = ["model", "D", "operation", *libraries]
    print("| " + " | ".join(header) + " |", flush=True)
    rows = run(
        libraries, args.models, args.dims, args.batch_size, args.repeats, args.warmup, args.seed
    )
    table = _table(rows, libraries)
    if "nflows" in libraries:
        error = cross_check_nice()
        notes.append(
            f"Correctness cross-check: NICE in flowcourse and in nflows with the same weights "
            f"give log-densities that differ by at most {error:.1e} nats (float64)"
        )
        print(notes[-1])

    versions = ", ".join(
        f"{library} {_version(library)}" for library in libraries if "(" not in library
    )
    report = "\n".join(
        [
            "# Benchmark results",
            "",
            f"Generated by `benchmarks/run.py` on {datetime.date.today().isoformat()}.",
            "",
            f"- Machine: {_cpu_name()}, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}, torch {torch.__version__} "
            f"({args.threads} CPU thread(s), {os.cpu_count()} cores; load average "
            f"{load_before:.1f} before and {os.getloadavg()[0]:.1f} after the run: other "
            f"work on the machine adds noise)",
            f"- Versions: {versions}",
            f"- Batch {args.batch_size}, median of {args.repeats} repeats after "
            f"{args.warmup} warm-up calls, float32, CPU; libraries interleaved in random order",
            f"- MAF: {NUM_MAF_LAYERS} layers; RealNVP: {NUM_COUPLING_LAYERS} affine couplings; "
            f"conditioners with two hidden layers of {HIDDEN_FEATURES} units",
            "- Each cell: median time per call, and in brackets the ratio to flowcourse "
            "(above 1x: slower than flowcourse); the `parameters` rows count each model's "
            "parameters, to show the models are the same size",
            *(f"- {note}" for note in notes),
            "",
            table,
            "",
        ]
    )
    args.output.write_text(report)
    print(f"\nwrote {args.output}")


if __name__ == "__main__":
    main()
