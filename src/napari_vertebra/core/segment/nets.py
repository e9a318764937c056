"""Network architectures of the seeds, built by name from a model card's arguments.

- ``unet``: U-Net with any segmentation-models-pytorch encoder (seeds 000/001/004 baselines; with
  ``in_channels = 2k + 1`` neighbouring sagittal slices it is the 2.5D CT model);
- ``multitask_unet``: seed 004, one shared encoder and two decoders, fracture
  (background/fracture/normal/sacrum) and region (background/thoracic/lumbar/sacrum);
- ``r2unet``: seed 001, recurrent residual convolutional U-Net (Alom et al., t = 2);
- ``mdr2unet``: seed 000, a multi-dilated residual block (dilations 2/4/8/16 and a 1×1
  bottleneck) as the first encoder stage, recurrent residual blocks after it;
- ``slice_classifier``: seed 003, a ResNet18-class encoder with one logit per sagittal slice.

Weights are never downloaded: smp encoders are built with ``encoder_weights=None``.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from .card import ARCHITECTURES


def _smp():
    import segmentation_models_pytorch as smp

    return smp


def _decode(decoder: nn.Module, features: list[torch.Tensor]) -> torch.Tensor:
    # segmentation-models-pytorch < 0.5 takes the features as separate arguments.
    parameters = inspect.signature(decoder.forward).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in parameters):
        return decoder(*features)
    return decoder(features)


class MultiTaskUNet(nn.Module):
    """Seed 004: shared encoder, a fracture decoder and a region decoder.

    ``forward`` returns ``{"fracture": logits, "region": logits}`` (N, classes, H, W).
    """

    def __init__(
        self,
        encoder_name: str = "resnet34",
        in_channels: int = 1,
        fracture_classes: int = 4,
        region_classes: int = 4,
        encoder_depth: int = 5,
        decoder_channels: Sequence[int] = (256, 128, 64, 32, 16),
    ):
        super().__init__()
        smp = _smp()
        common = dict(
            encoder_name=encoder_name,
            encoder_weights=None,
            in_channels=in_channels,
            encoder_depth=encoder_depth,
            decoder_channels=tuple(decoder_channels),
        )
        first = smp.Unet(classes=fracture_classes, **common)
        second = smp.Unet(classes=region_classes, **common)
        self.encoder = first.encoder
        self.fracture_decoder, self.fracture_head = first.decoder, first.segmentation_head
        self.region_decoder, self.region_head = second.decoder, second.segmentation_head

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.encoder(x)
        return {
            "fracture": self.fracture_head(_decode(self.fracture_decoder, features)),
            "region": self.region_head(_decode(self.region_decoder, features)),
        }


class RecurrentConv(nn.Module):
    """Recurrent convolution (Alom et al.): x_t = f(x + x_{t-1}) with shared weights, t steps."""

    def __init__(self, channels: int, steps: int = 2, dilation: int = 1):
        super().__init__()
        self.steps = steps
        self.conv = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=dilation, dilation=dilation, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        for _ in range(self.steps - 1):
            out = self.conv(x + out)
        return out


class RecurrentResidualBlock(nn.Module):
    """RRCNN block: 1×1 projection, two recurrent convolutions, residual connection."""

    def __init__(self, in_channels: int, out_channels: int, steps: int = 2):
        super().__init__()
        self.project = nn.Conv2d(in_channels, out_channels, 1)
        self.body = nn.Sequential(
            RecurrentConv(out_channels, steps), RecurrentConv(out_channels, steps)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.project(x)
        return x + self.body(x)


class MultiDilatedResidualBlock(nn.Module):
    """Seed 000's MDRB: four dilated 3×3 convolutions side by side, concatenated, reduced by a
    1×1 bottleneck and added to the (projected) input."""

    def __init__(
        self, in_channels: int, out_channels: int, dilations: Sequence[int] = (2, 4, 8, 16)
    ):
        super().__init__()
        self.project = nn.Conv2d(in_channels, out_channels, 1)
        self.branches = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(out_channels, out_channels, 3, padding=d, dilation=d, bias=False),
                nn.BatchNorm2d(out_channels),
                nn.ReLU(inplace=True),
            )
            for d in dilations
        )
        self.bottleneck = nn.Sequential(
            nn.Conv2d(out_channels * len(dilations), out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.project(x)
        return x + self.bottleneck(torch.cat([branch(x) for branch in self.branches], dim=1))


class RecurrentUNet(nn.Module):
    """R2U-Net (seed 001) or, with ``first_block="mdrb"``, MDR2-UNet (seed 000).

    Parameters
    ----------
    in_channels, classes
        Input channels and output classes (logits).
    base_width
        Channels of the first stage; each of the ``depth - 1`` poolings doubles them.
    depth
        Number of resolution levels (input size must be divisible by ``2 ** (depth - 1)``).
    steps
        Recurrence steps t of each recurrent convolution (2 in both papers).
    first_block
        ``"rrcnn"`` (R2U-Net) or ``"mdrb"`` (MDR2-UNet).
    """

    def __init__(
        self,
        in_channels: int = 1,
        classes: int = 1,
        base_width: int = 32,
        depth: int = 5,
        steps: int = 2,
        first_block: str = "rrcnn",
        dilations: Sequence[int] = (2, 4, 8, 16),
    ):
        super().__init__()
        widths = [base_width * 2**k for k in range(depth)]
        first = (
            MultiDilatedResidualBlock(in_channels, widths[0], dilations)
            if first_block == "mdrb"
            else RecurrentResidualBlock(in_channels, widths[0], steps)
        )
        self.down = nn.ModuleList(
            [first]
            + [RecurrentResidualBlock(widths[k - 1], widths[k], steps) for k in range(1, depth)]
        )
        self.pool = nn.MaxPool2d(2)
        self.up = nn.ModuleList(
            nn.ConvTranspose2d(widths[k], widths[k - 1], 2, stride=2)
            for k in range(depth - 1, 0, -1)
        )
        self.merge = nn.ModuleList(
            RecurrentResidualBlock(2 * widths[k - 1], widths[k - 1], steps)
            for k in range(depth - 1, 0, -1)
        )
        self.head = nn.Conv2d(widths[0], classes, 1)
        self.multiple = 2 ** (depth - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % self.multiple or x.shape[-2] % self.multiple:
            raise ValueError(
                f"input {tuple(x.shape[-2:])} is not divisible by {self.multiple} "
                "(pad or tile the image)"
            )
        skips = []
        for k, block in enumerate(self.down):
            x = block(x if k == 0 else self.pool(x))
            skips.append(x)
        for up, merge, skip in zip(self.up, self.merge, reversed(skips[:-1]), strict=True):
            x = merge(torch.cat([up(x), skip], dim=1))
        return self.head(x)


class SliceClassifier(nn.Module):
    """Seed 003: ResNet encoder, global average pooling, one fracture logit per slice."""

    def __init__(
        self, encoder_name: str = "resnet18", in_channels: int = 1, encoder_depth: int = 5
    ):
        super().__init__()
        self.encoder = _smp().encoders.get_encoder(
            encoder_name, in_channels=in_channels, depth=encoder_depth, weights=None
        )
        self.head = nn.Linear(self.encoder.out_channels[-1], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.encoder(x)[-1]
        return self.head(features.mean(dim=(-2, -1))).squeeze(-1)


def build_network(architecture: str, **arguments: Any) -> nn.Module:
    """Build an untrained network by architecture name (see :data:`ARCHITECTURES`).

    Parameters
    ----------
    architecture
        One of :data:`ARCHITECTURES`.
    **arguments
        Constructor arguments as stored in a model card (``classes``, ``in_channels``, …).
    """
    if architecture == "unet":
        arguments = {"encoder_name": "resnet34", **arguments, "encoder_weights": None}
        if "decoder_channels" in arguments:
            arguments["decoder_channels"] = tuple(arguments["decoder_channels"])
        return _smp().Unet(**arguments)
    if architecture == "multitask_unet":
        return MultiTaskUNet(**arguments)
    if architecture == "r2unet":
        return RecurrentUNet(first_block="rrcnn", **arguments)
    if architecture == "mdr2unet":
        return RecurrentUNet(first_block="mdrb", **arguments)
    if architecture == "slice_classifier":
        return SliceClassifier(**arguments)
    raise ValueError(f"unknown architecture {architecture!r}; known: {', '.join(ARCHITECTURES)}")


def aggregate_slices(
    probabilities: Sequence[float], rule: str = "any", threshold: float = 0.5
) -> bool:
    """Seed 003's per-vertebra decision from its slices' fracture probabilities.

    ``"any"``: fractured when any slice is positive (the paper's rule); ``"mean"``: when the
    mean probability reaches ``threshold``.
    """
    values = [float(p) for p in probabilities]
    if not values:
        raise ValueError("no slice probabilities to aggregate")
    if rule == "any":
        return max(values) >= threshold
    if rule == "mean":
        return sum(values) / len(values) >= threshold
    raise ValueError(f"unknown aggregation rule {rule!r} (any, mean)")
