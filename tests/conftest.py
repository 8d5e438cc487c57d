"""Shared test set-up: one torch thread per process.

``make test`` runs two pytest workers on two cores; two threads per worker
oversubscribe the machine and slow the Jacobian tests about tenfold.
"""

import torch

torch.set_num_threads(1)
