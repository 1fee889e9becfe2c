"""Generator families: the one small interface that training, checkpoints, the model artefact,
the inference engine, evaluation and trust call — never a family by name.

A family (``GeneratorFamily``) builds its networks from a config, makes the training step
that updates them, and generates post-contrast phases from pre-contrast slices with given
seeds. Its networks, objective and sampler live in ``models/<family>/``; its config is its own
typed model (``TrainConfig.model``, chosen by ``family``). Adding a family: a config in
models/, a class here, an entry in :data:`FAMILIES` and in ``training.config.FAMILY_CONFIGS``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar, Protocol

if TYPE_CHECKING:
    import torch

    from dcesynth.training.config import TrainConfig


class TrainStep(Protocol):
    """One update of a family's networks on one batch (DDP averages gradients in backward)."""

    loss_names: tuple[str, ...]  # what __call__ returns, in order; "loss_g" and "train_l1" too
    optimizers: dict[str, torch.optim.Optimizer]  # checkpointed under these names

    def __call__(
        self, pre: torch.Tensor, post: torch.Tensor, mask: torch.Tensor, gen: torch.Generator
    ) -> torch.Tensor:
        """``pre`` (N, 1, S, S), ``post`` (N, P, S, S) in [-1, 1], ``mask`` (N, 1, S, S) in
        {0, 1}; ``gen`` (CPU) for any draw the step makes. Returns the detached losses."""
        ...


class GeneratorFamily(ABC):
    """What the platform needs of a generator family."""

    name: ClassVar[str]

    @abstractmethod
    def generator(self, cfg: TrainConfig) -> torch.nn.Module:
        """A freshly initialised generator (the network saved as ``G``)."""

    def networks(self, cfg: TrainConfig) -> dict[str, torch.nn.Module]:
        """Every trained network by its checkpoint name, ``G`` first (built in this order from
        the caller's seed)."""
        return {"G": self.generator(cfg)}

    @abstractmethod
    def step(
        self, nets: dict[str, torch.nn.Module], cfg: TrainConfig, device, vgg_weights=None
    ) -> TrainStep:
        """The training step over ``nets`` (possibly DDP-wrapped), with its optimisers."""

    @abstractmethod
    def generate(
        self,
        G: torch.nn.Module,
        pre: torch.Tensor,
        cfg: TrainConfig,
        seeds: Sequence[int],
        spread: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Post phases (N, P, S, S) float32 in model range (unclamped) for ``pre`` (N, 1, S, S)
        in [-1, 1], slice i drawn with ``seeds[i]`` where the family draws at all; and, with
        ``spread``, the per-pixel spread of its samples (None where it has no samples)."""

    @abstractmethod
    def evaluations_per_slice(self, cfg: TrainConfig) -> int:
        """Network evaluations one generated slice costs."""

    @abstractmethod
    def describe(self, cfg: TrainConfig) -> dict:
        """The generator as the model artefact records it (architecture, channels, sampling)."""

    def needs_vgg(self, cfg: TrainConfig) -> bool:
        """Whether training needs the ImageNet VGG19 file (checked before Ray starts)."""
        return False

    def epoch_facts(self, cfg: TrainConfig) -> dict:
        """Constant facts written beside each epoch's metrics (e.g. the perceptual network)."""
        return {}


def registry() -> dict[str, GeneratorFamily]:
    """Every family by name (the names of ``training.config.FAMILY_CONFIGS``)."""
    from dcesynth.training.families.pix2pixhd import Pix2PixHD
    from dcesynth.training.families.rectified_flow import RectifiedFlow

    return {f.name: f for f in (Pix2PixHD(), RectifiedFlow())}


def family(cfg_or_name: TrainConfig | str) -> GeneratorFamily:
    """The family of a config (``cfg.model.family``) or of a name.

    Raises:
        ValueError: an unknown family, listing the valid ones.
    """
    name = cfg_or_name if isinstance(cfg_or_name, str) else cfg_or_name.model.family
    families = registry()
    if name not in families:
        raise ValueError(f"unknown generator family {name!r}; valid: {', '.join(families)}")
    return families[name]
