"""pix2pixHD networks (Wang et al., CVPR 2018), as used by the study. Read top to bottom.

* ``GlobalGenerator``: conv 7×7 → n_downsample stride-2 convs → n_blocks residual blocks →
  n_downsample transposed convs → conv 7×7 → tanh; reflection padding, instance norm.
* ``LocalEnhancer``: a global generator on the half-resolution image, whose last features are
  added to a full-resolution front end and refined by residual blocks (the two image scales).
* ``NLayerDiscriminator``: a PatchGAN returning every layer's output (for feature matching).
* ``MultiscaleDiscriminator``: ``num_d`` PatchGANs on the image downsampled ×1, ×2, ….

Pure modules: they never read options or choose devices. Channel counts follow the phases: the
input is the pre-contrast slice (1 channel, or replicated to 3), the output one channel per
generated phase (or a single phase replicated to 3, as in the study).
"""

from __future__ import annotations

import torch
from torch import nn


def _norm(channels: int) -> nn.Module:
    # pix2pixHD's "instance" norm: no learned affine, no running statistics
    return nn.InstanceNorm2d(channels, affine=False)


class ResnetBlock(nn.Module):
    """x + [pad, conv3, norm, ReLU, pad, conv3, norm](x)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.block = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3),
            _norm(channels),
            nn.ReLU(True),
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3),
            _norm(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


class GlobalGenerator(nn.Module):
    """The global generator G1.

    Args:
        in_channels: input channels (1, or 3 for a replicated pre-contrast slice).
        out_channels: generated channels (phases, or 3 for a replicated single phase).
        ngf: filters of the first layer (study: 64).
        n_downsample: stride-2 downsamplings (study: 4); inputs must divide by 2**n_downsample.
        n_blocks: residual blocks at the bottleneck (study: 9).
    """

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        ngf: int = 64,
        n_downsample: int = 4,
        n_blocks: int = 9,
    ) -> None:
        super().__init__()
        for name, v in (
            ("in_channels", in_channels),
            ("out_channels", out_channels),
            ("ngf", ngf),
            ("n_downsample", n_downsample),
            ("n_blocks", n_blocks),
        ):
            if v < (0 if name == "n_blocks" else 1):
                raise ValueError(f"GlobalGenerator: {name} must be positive, got {v}")
        self.n_downsample = n_downsample
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(in_channels, ngf, 7),
            _norm(ngf),
            nn.ReLU(True),
        ]
        for i in range(n_downsample):
            c = ngf * 2**i
            layers += [nn.Conv2d(c, 2 * c, 3, stride=2, padding=1), _norm(2 * c), nn.ReLU(True)]
        c = ngf * 2**n_downsample
        layers += [ResnetBlock(c) for _ in range(n_blocks)]
        for i in range(n_downsample):
            c = ngf * 2 ** (n_downsample - i)
            layers += [
                nn.ConvTranspose2d(c, c // 2, 3, stride=2, padding=1, output_padding=1),
                _norm(c // 2),
                nn.ReLU(True),
            ]
        self.features = nn.Sequential(*layers)  # everything before the output head
        self.head = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(ngf, out_channels, 7), nn.Tanh())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_divisible(x, self.n_downsample, "GlobalGenerator")
        return self.head(self.features(x))


class LocalEnhancer(nn.Module):
    """G = {G1, G2}: G1 (a global generator with 2·ngf filters) runs at half resolution; its
    features, added to G2's full-resolution front end, go through G2's residual blocks.

    Args:
        in_channels, out_channels: as for GlobalGenerator.
        ngf: filters of the full-resolution branch (study: 32, G1 gets 64).
        n_downsample_global, n_blocks_global: G1's shape (study: 4, 9).
        n_blocks_local: residual blocks of G2 (study: 3).
    """

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        ngf: int = 32,
        n_downsample_global: int = 4,
        n_blocks_global: int = 9,
        n_blocks_local: int = 3,
    ) -> None:
        super().__init__()
        self.n_downsample = n_downsample_global + 1
        self.global_net = GlobalGenerator(
            in_channels, out_channels, 2 * ngf, n_downsample_global, n_blocks_global
        )
        self.front = nn.Sequential(
            nn.ReflectionPad2d(3),
            nn.Conv2d(in_channels, ngf, 7),
            _norm(ngf),
            nn.ReLU(True),
            nn.Conv2d(ngf, 2 * ngf, 3, stride=2, padding=1),
            _norm(2 * ngf),
            nn.ReLU(True),
        )
        self.back = nn.Sequential(
            *[ResnetBlock(2 * ngf) for _ in range(n_blocks_local)],
            nn.ConvTranspose2d(2 * ngf, ngf, 3, stride=2, padding=1, output_padding=1),
            _norm(ngf),
            nn.ReLU(True),
            nn.ReflectionPad2d(3),
            nn.Conv2d(ngf, out_channels, 7),
            nn.Tanh(),
        )
        self.down = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_divisible(x, self.n_downsample, "LocalEnhancer")
        coarse = self.global_net.features(self.down(x))  # G1 without its output head
        return self.back(self.front(x) + coarse)


class NLayerDiscriminator(nn.Module):
    """PatchGAN with ``n_layers`` stride-2 convs; ``forward`` returns every block's output.

    Kernel 4, padding 2 as in pix2pixHD; LSGAN, so no sigmoid at the end.
    """

    def __init__(self, in_channels: int, ndf: int = 64, n_layers: int = 3) -> None:
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"NLayerDiscriminator: n_layers must be >= 1, got {n_layers}")
        blocks = [nn.Sequential(nn.Conv2d(in_channels, ndf, 4, 2, 2), nn.LeakyReLU(0.2, True))]
        nf = ndf
        for n in range(1, n_layers + 1):  # the last of these keeps the resolution (stride 1)
            prev, nf = nf, min(nf * 2, 512)
            stride = 2 if n < n_layers else 1
            blocks.append(
                nn.Sequential(nn.Conv2d(prev, nf, 4, stride, 2), _norm(nf), nn.LeakyReLU(0.2, True))
            )
        blocks.append(nn.Sequential(nn.Conv2d(nf, 1, 4, 1, 2)))
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for block in self.blocks:
            x = block(x)
            feats.append(x)
        return feats  # feats[-1] is the patch map of real/fake scores


class MultiscaleDiscriminator(nn.Module):
    """``num_d`` PatchGANs, the k-th on the input average-pooled k times (study: 2 scales)."""

    def __init__(self, in_channels: int, ndf: int = 64, n_layers: int = 3, num_d: int = 2) -> None:
        super().__init__()
        if num_d < 1:
            raise ValueError(f"MultiscaleDiscriminator: num_d must be >= 1, got {num_d}")
        self.nets = nn.ModuleList(
            NLayerDiscriminator(in_channels, ndf, n_layers) for _ in range(num_d)
        )
        self.down = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)

    def forward(self, x: torch.Tensor) -> list[list[torch.Tensor]]:
        out = []
        for i, net in enumerate(self.nets):
            out.append(net(x))
            if i < len(self.nets) - 1:
                x = self.down(x)
        return out


def check_divisible(x: torch.Tensor, n_downsample: int, who: str) -> None:
    f = 2**n_downsample
    if x.shape[-1] % f or x.shape[-2] % f:
        raise ValueError(
            f"{who}: image size {tuple(x.shape[-2:])} must be divisible by 2**{n_downsample} = {f}"
        )


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
