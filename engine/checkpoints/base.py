"""What every checkpoint reader offers the loader."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn

from engine.config import ModelConfig
from engine.errors import ModelLoadError


class Checkpoint(ABC):
    """A model on disk: its config, its tokenizer, and its tensors read one at a time."""

    path: Path
    config: ModelConfig
    config_source = "the config"  # where the config came from, as error messages name it

    @abstractmethod
    def tensor_names(self) -> list[str]:
        """Canonical names of every tensor this checkpoint holds."""
        ...

    @abstractmethod
    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Canonical name -> shape of every tensor, from the file headers (nothing is read)."""
        ...

    @abstractmethod
    def read(self, name: str, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        """One tensor, converted straight into `dtype` on `device` (no full-model fp32 copy)."""
        ...

    @abstractmethod
    def tokenizer(self):
        """The engine.tokenizer.Tokenizer that belongs to this checkpoint."""
        ...

    @abstractmethod
    def tokenizer_problem(self) -> str:
        """Why this checkpoint has no usable tokenizer ("" when it has one)."""
        ...

    def require_tokenizer(self) -> Checkpoint:
        """Itself, if it can read and write text; weights alone only give logits."""
        problem = self.tokenizer_problem()
        if problem:
            raise ModelLoadError(problem)
        return self

    def iter_tensors(self, names, dtype, device) -> Iterator[tuple[str, torch.Tensor]]:
        for name in names:
            yield name, self.read(name, dtype, device)

    def describe(self) -> str:
        return self.path.name


def is_gemma_norm(name: str) -> bool:
    """Gemma RMSNorms (zero-centred in HF): the text norms, q/k norms and the soft-emb norm.

    The SigLIP LayerNorms (layer_norm1/2, post_layernorm) are ordinary and excluded.
    """
    if name.startswith("vision_tower."):
        return False
    return name.endswith("norm.weight")


def assign_parameter(module: nn.Module, name: str, tensor: torch.Tensor) -> None:
    """Replace the (meta) parameter `name` of `module` by `tensor`, frozen."""
    owner_name, _, leaf = name.rpartition(".")
    owner = module.get_submodule(owner_name) if owner_name else module
    setattr(owner, leaf, nn.Parameter(tensor, requires_grad=False))
