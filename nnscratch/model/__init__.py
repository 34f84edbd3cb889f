"""Models: the interface attacks and defences use (``interface.Model``, derived from one
vector-Jacobian product) and ``Sequential``, a stack of layers that implements it."""

from nnscratch.model.interface import LOGITS, Model, join_batches
from nnscratch.model.sequential import Sequential

__all__ = ["LOGITS", "Model", "Sequential", "join_batches"]
