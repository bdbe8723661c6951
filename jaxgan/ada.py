"""ADA: the augmentation pipeline of adaptive discriminator augmentation.

Every image D sees (reals and fakes, in D's and in G's update) goes through a
chain of 12 ops, each applied to each example independently with probability
p * multiplier; ADA adjusts the single scalar p during training from an
overfitting heuristic, so p is an argument here that may be a traced value.
The ops and their order, as in the paper's appendix B and NVIDIA's
`training/augment.py` (stylegan2-ada-pytorch):

  pixel blitting:  xflip, rotate90 (k quarter turns, k ~ U{0..3}), xint
                   (integer translation, t ~ U[-xint_max, xint_max] x size, rounded);
  general geometry: isotropic scale (log2 s ~ N(0, scale_std)), pre-rotation,
                   anisotropic scale (s, 1/s), post-rotation (theta ~ U[-pi, pi] x
                   rotate_max, pre and post each with probability 1 - sqrt(1 - p), so
                   that P(any rotation) = p), fractional translation (t ~ N(0, xfrac_std) x size);
  color:           brightness (+b, b ~ N(0, brightness_std)), contrast (x c about 0,
                   log2 c ~ N(0, contrast_std)), luma flip (Householder reflection along
                   the luma axis [1, 1, 1]/sqrt(3)), hue rotation about the luma axis
                   (theta ~ U[-pi, pi] x hue_max), saturation (chroma x s, log2 s ~ N(0, saturation_std)).

All geometric ops compose into one 3x3 homogeneous matrix that maps output
pixels to input pixels (pixel coordinates relative to the image center) and are
executed by ONE filtered resampling: reflection padding, 2x upsampling with the
orthogonal 'sym6' wavelet low-pass, bilinear sampling of the affine grid, 2x
downsampling with the same filter, crop. The color ops compose into one 4x4
matrix on homogeneous RGB; for grayscale (C = 1) the matrix's color rows are
averaged and hue / saturation are skipped, as in the reference.

Differences from the reference, all deliberate:

- Static shapes. The reference reflect-pads by a data-dependent, batch-wide
  margin, clamped to [0, size - 1]; we always pad by that maximum, size - 1, so
  shapes are static under jit and an example's result does not depend on the
  rest of its batch (it equals the reference's whenever the reference's margin
  reaches its clamp, and otherwise differs only where the reference's filters see
  the zeros beyond its smaller padding).
- Exact blits. The reference also resamples examples whose matrix is a pure
  blit (any mix of xflip, rotate90, integer translation, or the identity). That
  is exact (to float rounding) for integer translations but not for flips: sym6
  is not symmetric, so once mirrored the up/down filter pair no longer cancels,
  and a flipped image comes back shifted by ~0.1 pixel and slightly filtered
  (measured: max error 0.03-0.06 on a smooth image in [-1, 1]). Examples whose
  general geometric part is the identity are instead produced by an exact pixel
  gather (reflection outside the image, as the reference's padding), selected
  per example with jnp.where; in particular an un-augmented example comes back
  bit-identical. Examples with a general op take the reference's path, flip
  artifact included (one resampling of the composed matrix).
- The draws use JAX's PRNG (one key per op), so they are not the reference's
  torch draws; their distributions are the reference's.

Pure, jittable, vmappable functions of `(key, images)`, images `[B, H, W, C]` in
[-1, 1], differentiable with respect to the images. As in `jaxgan.augment`, the
random draws (`draw_params`) are split from the deterministic transforms
(`apply_params` and the matrix builders), so tests can reproduce exactly what a
key does.

References:
  Karras et al. 2020, "Training Generative Adversarial Networks with Limited
  Data", arXiv:2006.06676, sec. 2-3 and app. B; NVIDIA's stylegan2-ada-pytorch,
  training/augment.py.
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxgan.upfirdn import setup_filter, upfirdn2d, upsample2d

BLIT_OPS = ("xflip", "rotate90", "xint")
GENERAL_OPS = ("scale", "rotate", "aniso", "xfrac")
COLOR_OPS = ("brightness", "contrast", "lumaflip", "hue", "saturation")
OPS = BLIT_OPS + GENERAL_OPS + COLOR_OPS

# Daubechies' least-asymmetric wavelet 'sym6', low-pass decomposition filter (PyWavelets' sym6.dec_lo).
# Orthogonal: its autocorrelation is 1 at lag 0 and 0 at the other even lags, so upsampling with it and
# downsampling with it mirrored (flip_filter) is the identity.
SYM6 = (
    0.015404109327027373,
    0.0034907120842174702,
    -0.11799011114819057,
    -0.048311742585633,
    0.4910559419267466,
    0.787641141030194,
    0.3379294217276218,
    -0.07263752278646252,
    -0.021060292512300564,
    0.04472490177066578,
    0.0017677118642428036,
    -0.007800708325034148,
)
_HZ_GEOM = setup_filter(SYM6)  # 12 taps: separable, unit DC gain
_HZ_PAD = len(SYM6) // 4  # extra output border (pixels) the resampling computes for the downsampling filter

_LUMA = np.full(3, 1.0 / math.sqrt(3.0))  # the luma axis v


# ----------------------------------------------------------------------------
# The pipeline.


@dataclasses.dataclass(frozen=True)
class AdaPipeline:
    """Probability multipliers of the ops (0 = off) and their strengths; the reference's defaults."""

    # Pixel blitting.
    xflip: float = 0.0
    rotate90: float = 0.0
    xint: float = 0.0
    xint_max: float = 0.125  # range of integer translation, relative to the image size
    # General geometric transformations.
    scale: float = 0.0
    rotate: float = 0.0
    aniso: float = 0.0
    xfrac: float = 0.0
    scale_std: float = 0.2  # log2 standard deviation of isotropic scaling
    rotate_max: float = 1.0  # range of arbitrary rotation, 1 = full circle
    aniso_std: float = 0.2  # log2 standard deviation of anisotropic scaling
    xfrac_std: float = 0.125  # standard deviation of fractional translation, relative to the image size
    # Color transformations.
    brightness: float = 0.0
    contrast: float = 0.0
    lumaflip: float = 0.0
    hue: float = 0.0
    saturation: float = 0.0
    brightness_std: float = 0.2
    contrast_std: float = 0.5  # log2
    hue_max: float = 1.0  # range of hue rotation, 1 = full circle
    saturation_std: float = 1.0  # log2

    def __post_init__(self):
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ValueError(
                    f"AdaPipeline.{field.name} must be a finite number >= 0, got {value!r}; multipliers are "
                    "probabilities relative to p (0 = off, 1 = the paper's), strengths are the reference's."
                )

    def enabled(self, op: str) -> bool:
        """Whether op's multiplier is nonzero (a static choice, as the reference's `if self.op > 0`)."""
        return getattr(self, op) > 0


_BLIT = dict(xflip=1.0, rotate90=1.0, xint=1.0)
_GEOM = dict(scale=1.0, rotate=1.0, aniso=1.0, xfrac=1.0)
_COLOR = dict(brightness=1.0, contrast=1.0, lumaflip=1.0, hue=1.0, saturation=1.0)

# The reference's train.py --augpipe specs for these ops (its 'bgc' is the paper's recommended default);
# 'b', 'g', 'c' abbreviate 'blit', 'geom', 'color'.
PRESETS: dict[str, AdaPipeline] = {
    "blit": AdaPipeline(**_BLIT),
    "geom": AdaPipeline(**_GEOM),
    "color": AdaPipeline(**_COLOR),
    "bg": AdaPipeline(**_BLIT, **_GEOM),
    "bgc": AdaPipeline(**_BLIT, **_GEOM, **_COLOR),
}
PRESETS.update(b=PRESETS["blit"], g=PRESETS["geom"], c=PRESETS["color"])


def pipeline(name: str) -> AdaPipeline:
    """The named preset: 'bgc' (the paper's), 'bg', 'blit' / 'b', 'geom' / 'g', 'color' / 'c'."""
    if name not in PRESETS:
        raise ValueError(
            f"Unknown ADA pipeline {name!r}; valid names: {sorted(PRESETS)}, or build an AdaPipeline(...) yourself."
        )
    return PRESETS[name]


def _as_pipeline(pipe: AdaPipeline | str) -> AdaPipeline:
    if isinstance(pipe, str):
        return pipeline(pipe)
    if not isinstance(pipe, AdaPipeline):
        raise TypeError(f"pipeline must be an AdaPipeline or a preset name such as 'bgc', got {pipe!r}.")
    return pipe


# ----------------------------------------------------------------------------
# Draws.


class AdaParams(NamedTuple):
    """Per-example parameters, after gating (an op not applied to an example holds its identity value).

    A field is None when its op is off in the pipeline (multiplier 0): the op is
    skipped entirely, as in the reference. Translations are fractions of the image
    size (x of the width, y of the height), as the reference draws them.
    """

    xflip: jax.Array | None = None  # [B] 0 or 1; 1 mirrors x (np.flip along W)
    rotate90: jax.Array | None = None  # [B] k in 0..3: k quarter turns, as np.rot90(image, k)
    xint: jax.Array | None = None  # [B, 2] (tx, ty); content moves by round(tx W), round(ty H) pixels
    scale: jax.Array | None = None  # [B] s: content is magnified by s (1 = none)
    rotate_pre: jax.Array | None = None  # [B] theta, radians (0 = none); pi/2 turns as rotate90's k = 1
    aniso: jax.Array | None = None  # [B] s: x magnified by s, y by 1/s (1 = none)
    rotate_post: jax.Array | None = None  # [B] theta, radians (0 = none)
    xfrac: jax.Array | None = None  # [B, 2] (tx, ty); content moves by tx W, ty H pixels
    brightness: jax.Array | None = None  # [B] b: added to every channel (0 = none)
    contrast: jax.Array | None = None  # [B] c: colors multiplied by c (about 0; 1 = none)
    lumaflip: jax.Array | None = None  # [B] 0 or 1; 1 reflects colors along the luma axis
    hue: jax.Array | None = None  # [B] theta: colors rotated about the luma axis (0 = none)
    saturation: jax.Array | None = None  # [B] s: chroma (the part orthogonal to luma) multiplied by s


def identity_params(batch: int, pipeline: AdaPipeline | str | None = None) -> AdaParams:
    """No-op parameters for every op enabled in `pipeline` (all 12 when None); `_replace` fields to pick a transform."""
    pipe = None if pipeline is None else _as_pipeline(pipeline)
    on = lambda op: pipe is None or pipe.enabled(op)
    zeros, ones = jnp.zeros((batch,), jnp.float32), jnp.ones((batch,), jnp.float32)
    return AdaParams(
        xflip=jnp.zeros((batch,), jnp.int32) if on("xflip") else None,
        rotate90=jnp.zeros((batch,), jnp.int32) if on("rotate90") else None,
        xint=jnp.zeros((batch, 2), jnp.float32) if on("xint") else None,
        scale=ones if on("scale") else None,
        rotate_pre=zeros if on("rotate") else None,
        aniso=ones if on("aniso") else None,
        rotate_post=zeros if on("rotate") else None,
        xfrac=jnp.zeros((batch, 2), jnp.float32) if on("xfrac") else None,
        brightness=zeros if on("brightness") else None,
        contrast=ones if on("contrast") else None,
        lumaflip=jnp.zeros((batch,), jnp.int32) if on("lumaflip") else None,
        hue=zeros if on("hue") else None,
        saturation=ones if on("saturation") else None,
    )


def _is_key_batch(key: jax.Array) -> bool:
    """True for one key per example: typed keys [B], raw uint32 keys [B, 2]."""
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        return key.ndim == 1
    return key.ndim == 2


# Every draw of the pipeline comes from one uniform and one normal array, each op at fixed rows (so an op
# draws the same values whichever other ops are on): two PRNG calls compile far faster than two dozen.
_UNIFORM_ROWS = {
    op: i
    for i, op in enumerate(
        "xflip xflip_gate rotate90 rotate90_gate xint_x xint_y xint_gate scale_gate rotate_pre rotate_pre_gate "
        "aniso_gate rotate_post rotate_post_gate xfrac_gate brightness_gate contrast_gate lumaflip lumaflip_gate "
        "hue hue_gate saturation_gate".split()
    )
}
_NORMAL_ROWS = {op: i for i, op in enumerate("scale aniso xfrac_x xfrac_y brightness contrast saturation".split())}


def _draw(key: jax.Array, batch: int, p: jax.Array, pipe: AdaPipeline) -> AdaParams:
    ku, kn = jax.random.split(key)
    u_all = jax.random.uniform(ku, (len(_UNIFORM_ROWS), batch), jnp.float32)
    n_all = jax.random.normal(kn, (len(_NORMAL_ROWS), batch), jnp.float32)
    u = lambda name: u_all[_UNIFORM_ROWS[name]]
    n = lambda name: n_all[_NORMAL_ROWS[name]]

    def gated(op, value, identity, prob=None, gate=None):
        """The reference's torch.where(rand < prob, value, identity), one gate per example."""
        prob = getattr(pipe, op) * p if prob is None else prob
        on = u(gate or op + "_gate") < prob
        on = on.reshape(on.shape + (1,) * (value.ndim - 1))
        return jnp.where(on, value, jnp.asarray(identity, value.dtype))

    out = {}
    if pipe.enabled("xflip"):
        out["xflip"] = gated("xflip", jnp.floor(u("xflip") * 2).astype(jnp.int32), 0)
    if pipe.enabled("rotate90"):
        out["rotate90"] = gated("rotate90", jnp.floor(u("rotate90") * 4).astype(jnp.int32), 0)
    if pipe.enabled("xint"):
        t = jnp.stack([u("xint_x"), u("xint_y")], -1)
        out["xint"] = gated("xint", (t * 2 - 1) * pipe.xint_max, 0.0)
    if pipe.enabled("scale"):
        out["scale"] = gated("scale", jnp.exp2(n("scale") * pipe.scale_std), 1.0)
    if pipe.enabled("rotate"):
        p_rot = 1 - jnp.sqrt(jnp.clip(1 - pipe.rotate * p, 0, 1))  # P(pre or post) = rotate * p
        angle = lambda name: (u(name) * 2 - 1) * np.pi * pipe.rotate_max
        out["rotate_pre"] = gated("rotate", angle("rotate_pre"), 0.0, p_rot, "rotate_pre_gate")
    if pipe.enabled("aniso"):
        out["aniso"] = gated("aniso", jnp.exp2(n("aniso") * pipe.aniso_std), 1.0)
    if pipe.enabled("rotate"):
        out["rotate_post"] = gated("rotate", angle("rotate_post"), 0.0, p_rot, "rotate_post_gate")
    if pipe.enabled("xfrac"):
        out["xfrac"] = gated("xfrac", jnp.stack([n("xfrac_x"), n("xfrac_y")], -1) * pipe.xfrac_std, 0.0)
    if pipe.enabled("brightness"):
        out["brightness"] = gated("brightness", n("brightness") * pipe.brightness_std, 0.0)
    if pipe.enabled("contrast"):
        out["contrast"] = gated("contrast", jnp.exp2(n("contrast") * pipe.contrast_std), 1.0)
    if pipe.enabled("lumaflip"):
        out["lumaflip"] = gated("lumaflip", jnp.floor(u("lumaflip") * 2).astype(jnp.int32), 0)
    if pipe.enabled("hue"):
        out["hue"] = gated("hue", (u("hue") * 2 - 1) * np.pi * pipe.hue_max, 0.0)
    if pipe.enabled("saturation"):
        out["saturation"] = gated("saturation", jnp.exp2(n("saturation") * pipe.saturation_std), 1.0)
    return AdaParams(**out)


def _check_p(p) -> jax.Array:
    if isinstance(p, (int, float, np.floating, np.integer)) and not (math.isfinite(p) and p >= 0):
        raise ValueError(f"the augmentation probability p must be a finite number >= 0, got {p!r}.")
    return jnp.asarray(p, jnp.float32)


def draw_params(key: jax.Array, batch: int, p: float | jax.Array, pipeline: AdaPipeline | str) -> AdaParams:
    """Per-example draws of every enabled op, each op gated with probability p * multiplier.

    `key` is one key for the batch, or one key per example ([batch] typed keys or
    [batch, 2] raw keys; example i then draws exactly what `draw_params(key[i], 1, ...)`
    draws). p may be a traced scalar.
    """
    pipe, p = _as_pipeline(pipeline), _check_p(p)
    if _is_key_batch(key):
        if key.shape[0] != batch:
            raise ValueError(f"got {key.shape[0]} per-example keys for a batch of {batch}; pass one key or {batch}.")
        per_example = jax.vmap(lambda kk: _draw(kk, 1, p, pipe))(key)
        return jax.tree.map(lambda v: v[:, 0], per_example)
    return _draw(key, batch, p, pipe)


# ----------------------------------------------------------------------------
# Geometric matrices: G maps output pixel -> input pixel, homogeneous (x, y, 1) relative to the image center.


def _mat3(rows) -> jax.Array:
    """[B, 3, 3] from nested rows of [B] arrays or scalars."""
    batch = next(jnp.shape(e)[0] for row in rows for e in row if jnp.ndim(e))
    return jnp.stack(
        [jnp.stack([jnp.broadcast_to(jnp.asarray(e, jnp.float32), (batch,)) for e in r], -1) for r in rows], -2
    )


def _matmul(a: jax.Array, b: jax.Array) -> jax.Array:
    return jnp.einsum("bij,bjk->bik", a, b, precision=jax.lax.Precision.HIGHEST)


def _scale_inv(sx, sy):
    return _mat3([[1 / sx, 0, 0], [0, 1 / sy, 0], [0, 0, 1]])


def _rotate(cos, sin):
    """The reference's rotate2d: [[cos, -sin], [sin, cos]] (y axis down)."""
    return _mat3([[cos, -sin, 0], [sin, cos, 0], [0, 0, 1]])


def _translate(tx, ty):
    return _mat3([[1, 0, tx], [0, 1, ty], [0, 0, 1]])


def _compose(batch: int, factors) -> jax.Array:
    g = jnp.broadcast_to(jnp.eye(3, dtype=jnp.float32), (batch, 3, 3))
    for f in factors:
        g = _matmul(g, f)
    return g


def _batch(params: AdaParams) -> int:
    leaves = jax.tree.leaves(params)
    if not leaves:
        raise ValueError("AdaParams holds no op (every field is None); draw them from a pipeline with an op enabled.")
    return leaves[0].shape[0]


def blit_matrix(params: AdaParams, height: int, width: int) -> jax.Array:
    """[B, 3, 3] G of xflip, then rotate90, then integer translation (the reference's order)."""
    batch, factors = _batch(params), []
    if params.xflip is not None:  # the reference's scale2d_inv(1 - 2i, 1)
        factors.append(_scale_inv(1 - 2 * params.xflip.astype(jnp.float32), 1.0))
    if params.rotate90 is not None:  # rotate2d_inv(-pi/2 k), with exact cos / sin of the quarter turns
        k = params.rotate90 % 4
        factors.append(_rotate(jnp.array([1.0, 0, -1, 0])[k], jnp.array([0.0, 1, 0, -1])[k]))
    if params.xint is not None:  # translate2d_inv(round(tx W), round(ty H))
        factors.append(_translate(-jnp.round(params.xint[:, 0] * width), -jnp.round(params.xint[:, 1] * height)))
    return _compose(batch, factors)


def general_matrix(params: AdaParams, height: int, width: int) -> jax.Array:
    """[B, 3, 3] G of scale, pre-rotation, anisotropic scale, post-rotation, fractional translation."""
    batch, factors = _batch(params), []
    if params.scale is not None:
        factors.append(_scale_inv(params.scale, params.scale))
    if params.rotate_pre is not None:  # rotate2d_inv(-theta)
        factors.append(_rotate(jnp.cos(params.rotate_pre), jnp.sin(params.rotate_pre)))
    if params.aniso is not None:
        factors.append(_scale_inv(params.aniso, 1 / params.aniso))
    if params.rotate_post is not None:
        factors.append(_rotate(jnp.cos(params.rotate_post), jnp.sin(params.rotate_post)))
    if params.xfrac is not None:
        factors.append(_translate(-params.xfrac[:, 0] * width, -params.xfrac[:, 1] * height))
    return _compose(batch, factors)


def geometric_matrix(params: AdaParams, height: int, width: int) -> jax.Array:
    """[B, 3, 3] G of all geometric ops: blit_matrix @ general_matrix."""
    return _matmul(blit_matrix(params, height, width), general_matrix(params, height, width))


def _general_is_identity(params: AdaParams, height: int, width: int) -> jax.Array:
    """[B] True where the general geometric ops are all at their identity and the blit maps pixels to pixels."""
    ok = jnp.ones((_batch(params),), bool)
    for name, identity in (("scale", 1), ("rotate_pre", 0), ("aniso", 1), ("rotate_post", 0)):
        if getattr(params, name) is not None:
            ok &= getattr(params, name) == identity
    if params.xfrac is not None:
        ok &= jnp.all(params.xfrac == 0, axis=-1)
    if params.rotate90 is not None and (height - width) % 2:
        # An odd quarter turn of an image whose sides differ by an odd number of pixels maps pixel
        # centers between pixels: that needs the interpolating path.
        ok &= params.rotate90 % 2 == 0
    return ok


def _uses_general(params: AdaParams) -> bool:
    return any(getattr(params, n) is not None for n in ("scale", "rotate_pre", "aniso", "rotate_post", "xfrac"))


# ----------------------------------------------------------------------------
# Geometric transforms.


def _check_images(images: jax.Array) -> None:
    if images.ndim != 4:
        raise ValueError(
            f"images must be a batch [B, H, W, C] (NHWC), got shape {images.shape}; add a channel axis to "
            "grayscale images, e.g. images[..., None]."
        )
    if images.shape[-1] not in (1, 3):
        raise ValueError(
            f"ADA augments RGB (C = 3) or grayscale (C = 1) images, got C = {images.shape[-1]} (shape "
            f"{images.shape}); images are NHWC, channels last."
        )


def _gather(images: jax.Array, rows: jax.Array, cols: jax.Array) -> jax.Array:
    """images[b, rows[b, ...], cols[b, ...]] -> [B, ..., C]; indices must be in range."""
    b, h, w, c = images.shape
    flat = images.reshape(b, h * w, c)
    idx = (rows * w + cols).reshape(b, -1, 1)
    return jnp.take_along_axis(flat, idx, axis=1).reshape(*rows.shape, c)


def blit(images: jax.Array, g: jax.Array) -> jax.Array:
    """Exact pixel blit out(p) = in(G p) for a G that maps pixel centers to pixel centers.

    Outside the image the input is reflected without repeating the edge pixel
    (numpy 'reflect', scipy 'mirror': the reference's reflection padding) up to
    size - 1 pixels away, and zero beyond, as the reference's maximal padding.
    """
    _check_images(images)
    _, h, w, _ = images.shape
    xs = (jnp.arange(w, dtype=jnp.float32) - (w - 1) / 2)[None, None, :]
    ys = (jnp.arange(h, dtype=jnp.float32) - (h - 1) / 2)[None, :, None]
    e = lambda i, j: g[:, i, j, None, None]
    x_in = jnp.round(e(0, 0) * xs + e(0, 1) * ys + e(0, 2) + (w - 1) / 2).astype(jnp.int32)  # [B, H, W]
    y_in = jnp.round(e(1, 0) * xs + e(1, 1) * ys + e(1, 2) + (h - 1) / 2).astype(jnp.int32)

    def reflect(i, n):
        inside = (i >= -(n - 1)) & (i <= 2 * (n - 1))
        return jnp.clip(jnp.where(i < 0, -i, jnp.where(i > n - 1, 2 * (n - 1) - i, i)), 0, n - 1), inside

    cols, in_x = reflect(x_in, w)
    rows, in_y = reflect(y_in, h)
    return _gather(images, rows, cols) * (in_x & in_y)[..., None].astype(images.dtype)


def grid_sample_bilinear(images: jax.Array, x: jax.Array, y: jax.Array) -> jax.Array:
    """Bilinear samples of images [B, H, W, C] at pixel coordinates x, y [B, ...] (pixel centers at integers).

    The reference's `grid_sample(mode='bilinear', padding_mode='zeros',
    align_corners=False)` with its normalized grid g already mapped to pixels,
    x = ((g_x + 1) W - 1) / 2: each of the four neighbors outside the image counts as 0.
    """
    _, h, w, _ = images.shape
    x0, y0 = jnp.floor(x), jnp.floor(y)
    fx, fy = (x - x0)[..., None], (y - y0)[..., None]
    x0, y0 = x0.astype(jnp.int32), y0.astype(jnp.int32)

    def tap(yy, xx):
        inside = ((xx >= 0) & (xx < w) & (yy >= 0) & (yy < h))[..., None].astype(images.dtype)
        return _gather(images, jnp.clip(yy, 0, h - 1), jnp.clip(xx, 0, w - 1)) * inside

    top = tap(y0, x0) * (1 - fx) + tap(y0, x0 + 1) * fx
    bottom = tap(y0 + 1, x0) * (1 - fx) + tap(y0 + 1, x0 + 1) * fx
    return top * (1 - fy) + bottom * fy


def resample(images: jax.Array, g: jax.Array) -> jax.Array:
    """The reference's filtered resampling out(p) = in(G p), G [B, 3, 3] in centered pixel coordinates.

    Reflect-pad, upsample 2x with sym6, bilinear-sample the (2x) affine grid with
    zeros outside, downsample 2x with sym6 mirrored, crop back to [H, W].
    """
    _check_images(images)
    b, h, w, _ = images.shape
    # The reference pads by the reach of G's corners plus the filter support, max over the batch and clamped
    # to [0, size - 1]. That margin is data dependent; under jit we always pad by its clamp, size - 1, which
    # covers every draw (see the module docstring).
    mx, my = w - 1, h - 1
    x = jnp.pad(images, ((0, 0), (my, my), (mx, mx), (0, 0)), mode="reflect")
    x = upsample2d(x, _HZ_GEOM, up=2)  # [B, 2 (H + 2 my), 2 (W + 2 mx), C]
    # G in the upsampled pixel grid; the half-pixel shifts are the reference's (the filters' phase).
    s2 = jnp.diag(jnp.array([2.0, 2.0, 1.0]))[None]
    s_half = jnp.diag(jnp.array([0.5, 0.5, 1.0]))[None]
    t_neg = jnp.array([[1.0, 0, -0.5], [0, 1, -0.5], [0, 0, 1]])[None]
    t_pos = jnp.array([[1.0, 0, 0.5], [0, 1, 0.5], [0, 0, 1]])[None]
    g2 = jnp.broadcast_to(t_neg, (b, 3, 3))
    for f in (s2, g.astype(jnp.float32), s_half, t_pos):
        g2 = _matmul(g2, jnp.broadcast_to(f, (b, 3, 3)))
    # The output grid has _HZ_PAD extra pixels per side (2x) for the downsampling filter.
    out_h, out_w = 2 * (h + 2 * _HZ_PAD), 2 * (w + 2 * _HZ_PAD)
    qx = (jnp.arange(out_w, dtype=jnp.float32) - (out_w - 1) / 2)[None, None, :]
    qy = (jnp.arange(out_h, dtype=jnp.float32) - (out_h - 1) / 2)[None, :, None]
    e = lambda i, j: g2[:, i, j, None, None]
    in_x = e(0, 0) * qx + e(0, 1) * qy + e(0, 2) + (x.shape[2] - 1) / 2
    in_y = e(1, 0) * qx + e(1, 1) * qy + e(1, 2) + (x.shape[1] - 1) / 2
    x = grid_sample_bilinear(x, in_x, in_y)
    # The reference's downsample2d(down=2, padding=-2 _HZ_PAD, flip_filter=True).
    fw = _HZ_GEOM.shape[0]
    lo, hi = (fw - 1) // 2 - 2 * _HZ_PAD, (fw - 2) // 2 - 2 * _HZ_PAD
    return upfirdn2d(x, _HZ_GEOM, down=2, padding=(lo, hi, lo, hi), flip_filter=True)


def apply_geometric(images: jax.Array, params: AdaParams) -> jax.Array:
    """All geometric ops as one transform: exact blits where the general part is the identity, else resampling."""
    _check_images(images)
    _, h, w, _ = images.shape
    if all(getattr(params, n) is None for n in BLIT_OPS) and not _uses_general(params):
        return images
    out = blit(images, blit_matrix(params, h, w))
    if _uses_general(params) or (params.rotate90 is not None and (h - w) % 2):
        exact = _general_is_identity(params, h, w)
        g = geometric_matrix(params, h, w)
        # A per-example select (bit-exact where `exact`). No lax.cond to skip the resampling when no example
        # needs it: the step applies this per example under vmap, where a cond is a select of both branches
        # anyway, and a cond's branches trip shard_map's varying-axes check.
        out = jnp.where(exact[:, None, None, None], out, resample(images, g).astype(out.dtype))
    return out


# ----------------------------------------------------------------------------
# Color.


def color_matrix(params: AdaParams, channels: int = 3) -> jax.Array:
    """[B, 4, 4] C on homogeneous RGB (C @ [r, g, b, 1]): brightness, contrast, luma flip, hue, saturation.

    Hue and saturation are skipped for channels == 1, as in the reference.
    """
    batch = _batch(params)
    eye = jnp.eye(4, dtype=jnp.float32)
    v = jnp.asarray(np.append(_LUMA, 0.0), jnp.float32)
    vv = jnp.outer(v, v)  # projection onto luma, [4, 4] (zero homogeneous row / column)
    per = lambda a: jnp.asarray(a, jnp.float32)[:, None, None]
    c = jnp.broadcast_to(eye, (batch, 4, 4))
    if params.brightness is not None:  # translate3d(b, b, b) @ C
        t = eye[None] + per(params.brightness) * jnp.zeros((4, 4)).at[:3, 3].set(1.0)[None]
        c = _matmul(t, c)
    if params.contrast is not None:  # scale3d(c, c, c) @ C
        c = _matmul(eye[None] + (per(params.contrast) - 1) * jnp.diag(jnp.array([1.0, 1, 1, 0]))[None], c)
    if params.lumaflip is not None:  # Householder reflection (I - 2 v v^T)
        c = _matmul(eye[None] - 2 * vv[None] * per(params.lumaflip), c)
    if params.hue is not None and channels > 1:  # Rodrigues rotation about v
        theta = per(params.hue)
        cross = jnp.array(  # [v]_x, the cross product with v
            [[0.0, -1, 1, 0], [1, 0, -1, 0], [-1, 1, 0, 0], [0, 0, 0, 0]]
        ) / math.sqrt(3.0)
        rot = jnp.cos(theta) * (eye - vv)[None] + jnp.sin(theta) * cross[None] + vv[None]
        rot = rot.at[:, 3, 3].set(1.0)
        c = _matmul(rot, c)
    if params.saturation is not None and channels > 1:  # v v^T + (I - v v^T) s, homogeneous row kept
        s = per(params.saturation)
        sat = vv[None] + (eye - vv)[None] * s
        c = _matmul(sat.at[:, 3, 3].set(1.0), c)
    return c


def apply_color(images: jax.Array, params: AdaParams) -> jax.Array:
    """images' colors through color_matrix; for C = 1 the matrix's color rows are averaged (the reference's)."""
    _check_images(images)
    channels = images.shape[-1]
    if all(getattr(params, n) is None for n in COLOR_OPS):
        return images
    c = color_matrix(params, channels).astype(images.dtype)
    identity = jnp.all(c == jnp.eye(4, dtype=c.dtype), axis=(1, 2))
    if channels == 3:
        # Elementwise multiply-adds, not a matmul: exact float32 on every backend (no TF32 / bf16 passes).
        out = (images[..., None, :] * c[:, None, None, :3, :3]).sum(-1) + c[:, None, None, :3, 3]
    else:
        row = c[:, :3, :].mean(axis=1)  # [B, 4]
        out = images * row[:, None, None, :3].sum(-1, keepdims=True) + row[:, None, None, 3:]
    # Bit-exact pass-through for examples with no color op applied.
    return jnp.where(identity[:, None, None, None], images, out)


# ----------------------------------------------------------------------------
# The pipeline.


def apply_params(images: jax.Array, params: AdaParams) -> jax.Array:
    """The deterministic pipeline: geometric ops (one transform), then color ops (one matrix)."""
    _check_images(images)
    if images.shape[0] != _batch(params):
        raise ValueError(f"params are for a batch of {_batch(params)}, got images of shape {images.shape}.")
    return apply_color(apply_geometric(images, params), params).astype(images.dtype)


def augment(key: jax.Array, images: jax.Array, p: float | jax.Array, pipeline: AdaPipeline | str = "bgc") -> jax.Array:
    """ADA's augmentation of images [B, H, W, C] in [-1, 1]; each op hits each example with probability p x multiplier.

    Args:
      key: one PRNG key for the batch, or one per example ([B] typed / [B, 2] raw;
        then example i is augmented exactly as `augment(key[i], images[i:i+1], ...)`).
      images: [B, H, W, C] float images, C = 3 (RGB) or 1 (grayscale).
      p: the augmentation probability, a float or a traced scalar (ADA adjusts it).
      pipeline: an AdaPipeline or a preset name ('bgc', the paper's default).

    Returns:
      Augmented images, same shape and dtype, differentiable w.r.t. `images`.
    """
    _check_images(images)
    pipe = _as_pipeline(pipeline)
    if not any(pipe.enabled(op) for op in OPS):
        return images
    return apply_params(images, draw_params(key, images.shape[0], p, pipe))
