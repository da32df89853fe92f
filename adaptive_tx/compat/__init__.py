"""Exact reproductions of other frameworks' optimizers: ``compat.torch`` (PyTorch) and ``compat.keras``.

Both are plain JAX: neither imports its framework.
"""

from adaptive_tx.compat import keras as keras
from adaptive_tx.compat import torch as torch

__all__ = ["keras", "torch"]
