"""A correctness cross-check: flowcourse's NICE and nflows' NICE agree, given the same weights.

Speed means nothing if the numbers are wrong. NICE's parametrisation can be matched
exactly, so the two libraries, which share no code, must give the same log-densities
to float64 round-off; that checks the masks, shifts, log-determinants and base density
of both.
"""

from __future__ import annotations

import torch
from torch import nn

from benchmarks.libraries import _ContextFree, _nflows_scaling

__all__ = ["cross_check_nice", "nice_pair"]


def cross_check_nice(features: int = 4, num_layers: int = 4, seed: int = 0) -> float:
    """Largest |difference| (nats) between flowcourse's and nflows' NICE log-densities."""
    flow, reference = nice_pair(features, num_layers, seed)
    generator = torch.Generator().manual_seed(seed + 1)
    x = 2 * torch.randn(256, features, dtype=torch.float64, generator=generator)
    with torch.no_grad():
        return float((flow.log_prob(x) - reference.log_prob(x)).abs().max())


def nice_pair(features: int = 4, num_layers: int = 4, seed: int = 0) -> tuple[nn.Module, nn.Module]:
    """A flowcourse NICE with random weights and the nflows NICE with the same weights.

    nflows' additive couplings get the weights of flowcourse's conditioners (restricted
    to the kept inputs and the transformed outputs when flowcourse's conditioner reads or
    writes the whole vector) and its scaling gets flowcourse's log-scales. Both are in
    float64.
    """
    from nflows import distributions, flows, transforms
    from nflows.nn import nets

    from flowcourse import models

    flow = models.nice(features, num_layers=num_layers, hidden_features=16, seed=seed).double()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # leave the identity: random weights everywhere
        for parameter in flow.parameters():
            noise = torch.randn(parameter.shape, generator=generator, dtype=torch.float64)
            parameter.copy_(0.3 * noise)

    *couplings, scaling = flow.transform
    layers = []
    for coupling in couplings:
        kept = coupling.mask.nonzero().flatten()
        moved = (~coupling.mask).nonzero().flatten()
        linears = [m for m in coupling.conditioner.modules() if isinstance(m, nn.Linear)]
        net = nets.MLP((len(kept),), (len(moved),), [16] * (len(linears) - 1)).double()
        first, last = linears[0], linears[-1]
        with torch.no_grad():
            reads_all = first.in_features == features
            net._input_layer.weight.copy_(first.weight[:, kept] if reads_all else first.weight)
            net._input_layer.bias.copy_(first.bias)
            for theirs, ours in zip(net._hidden_layers, linears[1:-1], strict=True):
                theirs.load_state_dict(ours.state_dict())
            writes_all = last.out_features == features
            net._output_layer.weight.copy_(last.weight[moved] if writes_all else last.weight)
            net._output_layer.bias.copy_(last.bias[moved] if writes_all else last.bias)
        mask = torch.where(coupling.mask, -1, 1)  # nflows: +1 transformed, -1 kept

        def conditioner(in_features: int, out_features: int, net: nn.Module = net) -> nn.Module:
            return _ContextFree(net)

        layers.append(transforms.AdditiveCouplingTransform(mask, conditioner))
    nflows_scaling = _nflows_scaling(features).double()
    with torch.no_grad():
        nflows_scaling.log_scale.copy_(scaling.log_scale)
    layers.append(nflows_scaling)
    reference = flows.Flow(
        transforms.CompositeTransform(layers), distributions.StandardNormal([features])
    ).double()
    return flow, reference
