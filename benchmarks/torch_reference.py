"""The PyTorch reference of tools/bench.py's rows: the same networks, the same train step, timed the same way.

  python benchmarks/torch_reference.py [--only=dcgan32,mlp] [--variants=eager,channels_last,compile] [--json]
      [--batch_size=64] [--n_critic=N] [--steps=10] [--repeats=5] [--threads=os.cpu_count()] [--fid_batch=50]
      [--omp_wait_policy=passive]

Rows (networks in benchmarks/torch_nets.py, each the twin of jaxgan's):
  mlp      MLPGenerator(100 -> 28x28x1, hidden 256, depth 2, tanh) / MLPDiscriminator(256, 2)
  dcgan32  DCGANGenerator(latent 100, 32 px, 1 channel, ngf 64) / DCGANDiscriminator(32 px, ndf 64)
  dcgan64  the same at 64 px, 3 channels
  sngan32  experiments/configs/sngan_resnet.py at 32x32x3: ResNet G (latent 128, ngf 64) / spectrally
           normalized ResNet D (ndf 64), hinge loss, Adam 2e-4 betas (0, 0.9), n_critic 5
  stylegan2_32  experiments/configs/stylegan2.py at 32x32x3, 10 classes: StyleGAN2Generator / Discriminator
           (widths min(1024 // res, 64), z = w = 64, 2 mapping layers), non-saturating loss, style mixing 0.9,
           lazy R1 (gamma 0.01, every 16) and lazy path length (weight 2, every 4, half batch), Adam 0.0025
           (0, 0.99) lazy-corrected, the half-life EMA (10k images, ramp-up 0.05)
  biggan32 experiments/configs/biggan.py at 32x32x3, 10 classes: BigGANGenerator (hierarchical latent, shared
           embedding, conditional BatchNorm, attention at 16, spectral norm) / BigGANDiscriminator (SNGAN's
           32 px D with attention and the projection), hinge loss, orthogonal regularization 1e-4, Adam G 1e-4 /
           D 4e-4 (0, 0.999), n_critic 2, EMA 0.999 with warm-up
  fid      FID Inception features: uint8 [50, 32, 32, 3] -> /255 -> bilinear 299x299 (align_corners=False)
           -> 2x - 1 -> 2048-d pool features (jaxgan's `fid.InceptionFeatures`, resize="pytorch_fid")

One step is jaxgan's `GANStep` (jaxgan/train/steps.py): n_critic D updates, each on fresh z ~ N(0, I)
through G in train mode without gradients and on sub-batch j of a fixed random real batch, D run
separately on reals and fakes (BatchNorm in train mode; one backward per loss term, the gradients
adding up to jaxgan's), then one G update through D in train mode
(D's weights frozen, so no D weight gradients, as jax differentiates G's params only), then the EMA
of G's params (decay 0.999, `torch._foreach_lerp_`). Non-saturating loss in softplus form for
mlp/dcgan, Adam 2e-4 betas (0.5, 0.999); sngan32 as its config says. stylegan2_32 and biggan32
(`ConditionalGANStep`) add what their presets' jaxgan step does: class labels (the fixed real batch's,
uniform ones for G), each net's own Adam, the lazy regularizers on jaxgan's schedule (R1 and path length
run eagerly in every variant: inductor does no double backward), the orthogonal penalty, the EMA decay
schedule. Their timed runs start at step 1, as jaxgan's (step 0 is the first call), so the lazy updates
fall on the same steps on both sides.

Variants: `eager`; `channels_last` (conv rows: model, real batch and inputs in torch.channels_last);
`compile` (`torch.compile` of G and D, default inductor mode; the optimizer, autograd and EMA stay
eager). A variant that fails (e.g. no C++ compiler for inductor) gives its row an `error` field.

Timing as tools/bench.py: the first step (compile + first run) timed alone as compile_plus_first_s,
then the median over --repeats timed runs of --steps steps each; torch.set_num_threads(--threads).
For fid, as there, each timed run is ONE --fid_batch batch (steps_per_s = batches/s, images_per_s =
images/s; --steps is ignored). Adam is fused=True, PyTorch's fastest CPU Adam.

Each (row, variant) runs in a fresh process (this script re-invokes itself with --child=ROW:VARIANT
and forwards the one JSON line it prints), so peak_rss_mb (getrusage ru_maxrss) is that
measurement's own and no compile cache or thread pool carries over. tools/bench.py runs this script
as a subprocess to put jaxgan/PyTorch ratios next to its rows.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROWS = ("mlp", "dcgan32", "dcgan64", "sngan32", "stylegan2_32", "biggan32", "fid")
VARIANTS = ("eager", "channels_last", "compile")
CONV_ROWS = ("dcgan32", "dcgan64", "sngan32", "stylegan2_32", "biggan32", "fid")
CONDITIONAL_ROWS = ("stylegan2_32", "biggan32")  # class-conditional presets: ConditionalGANStep
# The rows' own n_critic when --n_critic is not given (sngan32: experiments/configs/sngan_resnet.py;
# biggan32: experiments/configs/biggan.py).
DEFAULT_N_CRITIC = {"mlp": 1, "dcgan32": 1, "dcgan64": 1, "sngan32": 5, "stylegan2_32": 1, "biggan32": 2}
# What a conditional row's step holds beyond GANStep's (its JSON line's `step` field).
ROW_NOTES = {
    "stylegan2_32": "stylegan2 preset: non-saturating loss, lazy R1 (gamma 0.01 every 16) and lazy path length "
    "(weight 2 every 4, half batch), style mixing 0.9, Adam 0.0025 (0, 0.99) lazy-corrected, half-life EMA",
    "biggan32": "biggan preset: hinge loss, orthogonal regularization 1e-4 on G, n_critic 2, Adam G 1e-4 / "
    "D 4e-4 (0, 0.999), EMA 0.999 with warm-up",
}
INSTALL_HINT = 'PyTorch is not installed: pip install "jaxgan[bench]" (or pip install torch==2.13.0).'


def parse_names(text: str, valid: tuple[str, ...], what: str, parser: argparse.ArgumentParser) -> list[str]:
    """Comma-separated names, in order; empty = all; an unknown name is a usage error listing the valid ones."""
    names = [n.strip() for n in text.split(",") if n.strip()] or list(valid)
    unknown = [n for n in names if n not in valid]
    if unknown:
        parser.error(f"unknown {what} {unknown}; valid {what}: {', '.join(valid)}.")
    return names


# --------------------------------------------------------------------------- one measurement (child process)


def build_gan(row: str, n_critic: int, batch_size: int):
    """(G, D, real batches [n_critic x [B, ...]], latent_dim, d_losses, g_loss, adam kwargs) of a GAN row.

    d_losses = (on real logits, on fake logits): D's per-example loss is their sum."""
    import torch
    import torch.nn.functional as F
    from benchmarks import torch_nets as tn

    if row == "mlp":
        g, d, shape, latent = (
            tn.MLPGenerator(100, (1, 28, 28), 256, 2, True),
            tn.MLPDiscriminator(784, 256, 2),
            (1, 28, 28),
            100,
        )
    elif row in ("dcgan32", "dcgan64"):
        size, channels = (32, 1) if row == "dcgan32" else (64, 3)
        g = tn.DCGANGenerator(latent_dim=100, image_size=size, channels=channels, ngf=64)
        d = tn.DCGANDiscriminator(image_size=size, channels=channels, ndf=64)
        shape, latent = (channels, size, size), 100
    elif row == "sngan32":
        g, d, shape, latent = tn.ResNetGenerator(128, 3, 64), tn.ResNetDiscriminator(3, 64), (3, 32, 32), 128
    else:
        raise ValueError(f"{row} is not a GAN row; GAN rows: {sorted(DEFAULT_N_CRITIC)}.")
    if row == "sngan32":  # hinge (Lim & Ye 2017; Miyato et al. 2018), as jaxgan.losses.hinge_d / wasserstein_g
        d_losses = (lambda real: F.relu(1.0 - real), lambda fake: F.relu(1.0 + fake))
        g_loss = lambda fake: -fake
        adam = dict(lr=2e-4, betas=(0.0, 0.9))
    else:  # non-saturating, softplus form (jaxgan.losses.non_saturating_d / _g)
        d_losses = (lambda real: F.softplus(-real), lambda fake: F.softplus(fake))
        g_loss = lambda fake: F.softplus(-fake)
        adam = dict(lr=2e-4, betas=(0.5, 0.999))
    gen = torch.Generator().manual_seed(0)
    reals = [torch.rand((batch_size, *shape), generator=gen) * 2 - 1 for _ in range(n_critic)]
    return g, d, reals, latent, d_losses, g_loss, adam


class GANStep:
    """One full train step per call (see the module docstring); keeps G, D, both Adams and the EMA."""

    def __init__(
        self,
        g,
        d,
        reals,
        latent_dim: int,
        d_losses,
        g_loss,
        adam: dict,
        *,
        compile_nets: bool,
        channels_last: bool,
        ema_decay: float = 0.999,
    ):
        import torch

        if channels_last:
            g, d = g.to(memory_format=torch.channels_last), d.to(memory_format=torch.channels_last)
            reals = [r.contiguous(memory_format=torch.channels_last) for r in reals]
        self.g, self.d, self.reals, self.latent_dim = g.train(), d.train(), reals, latent_dim
        self.d_losses, self.g_loss, self.channels_last, self.ema_decay = d_losses, g_loss, channels_last, ema_decay
        self.g_params = list(g.parameters())
        # fused=True: PyTorch's fastest CPU Adam (one kernel over all params; since 2.4); timings against the
        # per-tensor loop and foreach: benchmarks/README.md.
        self.g_opt = torch.optim.Adam(self.g_params, eps=1e-8, fused=True, **adam)
        self.d_opt = torch.optim.Adam(d.parameters(), eps=1e-8, fused=True, **adam)
        self.ema = [p.detach().clone() for p in self.g_params]
        self.g_run, self.d_run = (torch.compile(g), torch.compile(d)) if compile_nets else (g, d)

    def __call__(self) -> None:
        import torch

        batch = self.reals[0].shape[0]
        for real in self.reals:  # n_critic D updates, sub-batch j for update j
            with torch.no_grad():
                fake = self.g_run(torch.randn(batch, self.latent_dim))
            if self.channels_last and fake.dim() == 4:
                fake = fake.contiguous(memory_format=torch.channels_last)
            self.d_opt.zero_grad(set_to_none=True)
            # mean(l_real + l_fake) = mean(l_real) + mean(l_fake): one backward per term, as PyTorch's DCGAN
            # example; gradients accumulate to jaxgan's. (One backward after both forwards fails under inductor
            # with spectral norm: the second forward's in-place power iteration bumps a saved v's version.)
            d_real, d_fake = self.d_losses
            d_real(self.d_run(real)).mean().backward()
            d_fake(self.d_run(fake)).mean().backward()
            self.d_opt.step()
        self.d.requires_grad_(False)  # G's update differentiates G's params only
        self.g_opt.zero_grad(set_to_none=True)
        self.g_loss(self.d_run(self.g_run(torch.randn(batch, self.latent_dim)))).mean().backward()
        self.g_opt.step()
        self.d.requires_grad_(True)
        with torch.no_grad():
            torch._foreach_lerp_(self.ema, [p.detach() for p in self.g_params], 1.0 - self.ema_decay)


# --------------------------------------------------------------------------- the class-conditional preset rows


def r1_penalty(d, real, labels):
    """E ||grad_x D(x)||^2 on reals, differentiable (create_graph), as jaxgan.regularizers.r1_penalty."""
    import torch

    x = real.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(d(x, labels).sum(), x, create_graph=True)
    return grad.square().flatten(1).sum(dim=1).mean()


def path_lengths(g, z, labels, noise):
    """||J_w^T y|| per example (StyleGAN2's path lengths, jaxgan.regularizers.path_lengths): ws from G's
    mapping with style mixing (jaxgan's `styles(train=True)`, w_avg not updated), J^T y one double-backward-able
    vector-Jacobian product of the synthesis; the squared norm summed over w_dim, averaged over the ws."""
    import torch

    ws = g.styles(z, labels, mix=True, update_w_avg=False)
    images = g.synthesize(ws, z)
    (grads,) = torch.autograd.grad((images * noise).sum(), ws, create_graph=True)
    return grads.square().sum(dim=2).mean(dim=1).sqrt()


class ConditionalGANStep:
    """jaxgan's GANStep for the class-conditional preset rows (stylegan2_32, biggan32); see ROW_NOTES.

    As GANStep, plus: class ids (the fixed real batch's, uniform ones for G), G's and D's own Adam, an
    extra G loss term (BigGAN's orthogonal regularization), the EMA decay as a function of the step, and
    StyleGAN2's lazy regularizers on jaxgan's schedule (step counted from 0 on the first call): R1 every
    r1_every steps as a separate D update on gamma / 2 * r1_every * R1 (the last real sub-batch), path length
    every pl_every steps as a separate G update on weight * pl_every * E(||J^T y|| - a)^2 on batch / shrink
    fresh latents, a the running mean (rate pl_decay). Those two always run on the eager G and D: inductor
    (the `compile` variant) does not do the double backward they need.
    """

    def __init__(
        self,
        g,
        d,
        reals,
        real_labels,
        *,
        latent_dim: int,
        num_classes: int,
        d_losses,
        g_loss,
        g_adam: dict,
        d_adam: dict,
        ema_decay,
        compile_nets: bool,
        channels_last: bool,
        g_penalty=None,
        r1: dict | None = None,
        path_length: dict | None = None,
    ):
        import torch

        if channels_last:
            g, d = g.to(memory_format=torch.channels_last), d.to(memory_format=torch.channels_last)
            reals = [r.contiguous(memory_format=torch.channels_last) for r in reals]
        self.g, self.d, self.reals, self.real_labels = g.train(), d.train(), reals, real_labels
        self.latent_dim, self.num_classes, self.channels_last = latent_dim, num_classes, channels_last
        self.d_losses, self.g_loss, self.ema_decay, self.g_penalty = d_losses, g_loss, ema_decay, g_penalty
        self.r1, self.path_length = r1, path_length
        self.g_params = list(g.parameters())
        self.g_opt = torch.optim.Adam(self.g_params, eps=1e-8, fused=True, **g_adam)
        self.d_opt = torch.optim.Adam(d.parameters(), eps=1e-8, fused=True, **d_adam)
        self.ema = [p.detach().clone() for p in self.g_params]
        self.g_run, self.d_run = (torch.compile(g), torch.compile(d)) if compile_nets else (g, d)
        self.step, self.pl_mean = 0, torch.zeros(())

    def _latents(self, n: int):
        import torch

        return torch.randn(n, self.latent_dim), torch.randint(0, self.num_classes, (n,))

    def __call__(self) -> None:
        import torch

        batch = self.reals[0].shape[0]
        for real, real_labels in zip(self.reals, self.real_labels):  # n_critic D updates
            z, labels = self._latents(batch)
            with torch.no_grad():
                fake = self.g_run(z, labels)
            if self.channels_last:
                fake = fake.contiguous(memory_format=torch.channels_last)
            self.d_opt.zero_grad(set_to_none=True)
            d_real, d_fake = self.d_losses
            d_real(self.d_run(real, real_labels)).mean().backward()
            d_fake(self.d_run(fake, labels)).mean().backward()
            self.d_opt.step()
        if self.r1 and self.step % self.r1["every"] == 0:  # lazy R1: its own D update
            # Zeroed, not None: params R1 does not reach still take their Adam update with a zero gradient,
            # as optax updates the whole tree.
            self.d_opt.zero_grad(set_to_none=False)
            scale = self.r1["gamma"] / 2 * self.r1["every"]
            (r1_penalty(self.d, self.reals[-1], self.real_labels[-1]) * scale).backward()
            self.d_opt.step()
        self.d.requires_grad_(False)  # G's update differentiates G's params only
        self.g_opt.zero_grad(set_to_none=True)
        z, labels = self._latents(batch)
        loss = self.g_loss(self.d_run(self.g_run(z, labels), labels)).mean()
        if self.g_penalty is not None:
            weight, penalty = self.g_penalty
            loss = loss + weight * penalty(self.g)
        loss.backward()
        self.g_opt.step()
        self.d.requires_grad_(True)
        pl = self.path_length
        if pl and self.step % pl["every"] == 0:  # lazy path length: its own G update
            n = batch // pl["shrink"]
            z, labels = self._latents(n)
            size = self.reals[0].shape[-2:]
            noise = torch.randn(n, self.reals[0].shape[1], *size) / math.sqrt(size[0] * size[1])
            lengths = path_lengths(self.g, z, labels, noise)
            self.pl_mean = self.pl_mean + pl["decay"] * (lengths.mean().detach() - self.pl_mean)
            self.g_opt.zero_grad(set_to_none=False)  # zeroed, not None, as for R1
            ((lengths - self.pl_mean).square().mean() * (pl["weight"] * pl["every"])).backward()
            self.g_opt.step()
        with torch.no_grad():
            decay = float(self.ema_decay(self.step))
            torch._foreach_lerp_(self.ema, [p.detach() for p in self.g_params], 1.0 - decay)
        self.step += 1


def lazy_adam(lr: float, b1: float, b2: float, every: int) -> dict:
    """jaxgan.optim.lazy_adam_hyperparams: (lr c, b1^c, b2^c), c = every / (every + 1)."""
    c = every / (every + 1)
    return dict(lr=lr * c, betas=(b1**c, b2**c))


def build_conditional(row: str, n_critic: int, batch_size: int, **options) -> ConditionalGANStep:
    """The ConditionalGANStep of a class-conditional preset row, with torch's own init (see ROW_NOTES)."""
    import torch
    import torch.nn.functional as F
    from benchmarks import torch_nets as tn

    gen = torch.Generator().manual_seed(0)
    shape, num_classes = (3, 32, 32), 10
    reals = [torch.rand((batch_size, *shape), generator=gen) * 2 - 1 for _ in range(n_critic)]
    labels = [torch.randint(0, num_classes, (batch_size,), generator=gen) for _ in range(n_critic)]
    if row == "stylegan2_32":  # experiments/configs/stylegan2.py
        g, d = tn.StyleGAN2Generator(num_classes=num_classes), tn.StyleGAN2Discriminator(num_classes=num_classes)
        half_life, rampup = 10_000.0, 0.05  # config.ema_half_life_images, ema_rampup

        def ema_decay(step: int) -> float:  # jaxgan.train.ema_decay_from_half_life
            h = min(half_life, step * batch_size * rampup)
            return 0.5 ** (batch_size / h) if h > 0 else 0.0

        return ConditionalGANStep(
            g,
            d,
            reals,
            labels,
            latent_dim=g.latent_dim,
            num_classes=num_classes,
            d_losses=(lambda real: F.softplus(-real), lambda fake: F.softplus(fake)),
            g_loss=lambda fake: F.softplus(-fake),
            g_adam=lazy_adam(0.0025, 0.0, 0.99, 4),
            d_adam=lazy_adam(0.0025, 0.0, 0.99, 16),
            ema_decay=ema_decay,
            r1=dict(gamma=0.01, every=16),
            path_length=dict(weight=2.0, every=4, decay=0.01, shrink=2),
            **options,
        )
    if row == "biggan32":  # experiments/configs/biggan.py
        g, d = tn.BigGANGenerator(num_classes=num_classes), tn.BigGANDiscriminator(num_classes=num_classes)
        return ConditionalGANStep(
            g,
            d,
            reals,
            labels,
            latent_dim=128,
            num_classes=num_classes,
            d_losses=(lambda real: F.relu(1.0 - real), lambda fake: F.relu(1.0 + fake)),
            g_loss=lambda fake: -fake,
            g_adam=dict(lr=1e-4, betas=(0.0, 0.999)),
            d_adam=dict(lr=4e-4, betas=(0.0, 0.999)),
            ema_decay=lambda step: min(0.999, (1.0 + step) / (10.0 + step)),  # jaxgan's ema_warmup
            g_penalty=(1e-4, lambda g: tn.orthogonal_penalty(g.orthogonal_kernels())),
            **options,
        )
    raise ValueError(f"{row} is not a conditional row; they are {CONDITIONAL_ROWS}.")


def make_fid_step(batch_size: int, *, compile_nets: bool, channels_last: bool, weights: str | None):
    """A zero-argument callable extracting 2048-d features of one fixed uint8 batch (see the module docstring)."""
    import numpy as np
    import torch
    import torch.nn.functional as F
    from benchmarks import torch_nets as tn

    variables, _ = tn.load_inception_npz(weights)
    model = tn.load_inception_variables(tn.InceptionV3(), variables).eval()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    run = torch.compile(model) if compile_nets else model
    images = np.random.default_rng(0).integers(0, 256, (batch_size, 32, 32, 3), dtype=np.uint8)

    def step() -> np.ndarray:
        with torch.inference_mode():
            x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0
            x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
            x = 2.0 * x - 1.0
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            return run(x).numpy()

    return step


def time_step(step, *, steps: int, repeats: int) -> tuple[float, float]:
    """(compile_plus_first_s, median seconds per step) with tools/bench.py's protocol."""
    start = time.perf_counter()
    step()
    first = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            step()
        times.append((time.perf_counter() - start) / steps)
    return first, statistics.median(times)


def measure(row: str, variant: str, args: argparse.Namespace) -> dict:
    """One (row, variant) measurement as the JSON record; failures land in `error`."""
    import resource

    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    n_critic = "-" if row == "fid" else (args.n_critic or DEFAULT_N_CRITIC[row])
    batch = args.fid_batch if row == "fid" else args.batch_size
    record = dict(
        name=row,
        variant=variant,
        framework="torch",
        torch_version=torch.__version__,
        threads=torch.get_num_threads(),
        batch_size=batch,
        n_critic=n_critic,
        omp_wait_policy=os.environ.get("OMP_WAIT_POLICY", "default"),
    )
    try:
        options = dict(compile_nets=variant == "compile", channels_last=variant == "channels_last")
        if row == "fid":
            step = make_fid_step(batch, weights=args.fid_weights, **options)
        elif row in CONDITIONAL_ROWS:
            step = build_conditional(row, n_critic, batch, **options)
            record.update(loss="non_saturating" if row == "stylegan2_32" else "hinge", step=ROW_NOTES[row])
        else:
            g, d, reals, latent, d_losses, g_loss, adam = build_gan(row, n_critic, batch)
            record.update(loss="hinge" if row == "sngan32" else "non_saturating", adam_betas=list(adam["betas"]))
            step = GANStep(g, d, reals, latent, d_losses, g_loss, adam, **options)
        # fid: one batch per timed run, as tools/bench.py's fid row.
        first, per_step = time_step(step, steps=1 if row == "fid" else args.steps, repeats=args.repeats)
        per_step_images = batch if row == "fid" else batch * n_critic
        record.update(steps_per_s=1.0 / per_step, images_per_s=per_step_images / per_step, compile_plus_first_s=first)
    except Exception as e:  # noqa: BLE001 - reported in the row, e.g. an inductor compile failure
        record["error"] = f"{type(e).__name__}: {str(e).strip()[:1500]}"
    record["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return record


# --------------------------------------------------------------------------- driver (parent process)


def run_child(row: str, variant: str, args: argparse.Namespace) -> dict:
    """Runs one measurement in a fresh interpreter and returns its JSON record."""
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        f"--child={row}:{variant}",
        f"--batch_size={args.batch_size}",
        f"--steps={args.steps}",
        f"--repeats={args.repeats}",
        f"--threads={args.threads}",
        f"--fid_batch={args.fid_batch}",
    ]
    if args.n_critic:
        cmd.append(f"--n_critic={args.n_critic}")
    if args.fid_weights:
        cmd.append(f"--fid_weights={args.fid_weights}")
    env = dict(os.environ)
    if args.omp_wait_policy:
        env["OMP_WAIT_POLICY"] = args.omp_wait_policy.upper()
    # A cold inductor cache for each compile measurement (unless the caller set one), so
    # compile_plus_first_s is a real compile and not a hit on an earlier run's on-disk cache.
    cache = tempfile.mkdtemp(prefix="torchinductor_") if "TORCHINDUCTOR_CACHE_DIR" not in env else None
    if cache:
        env["TORCHINDUCTOR_CACHE_DIR"] = cache
    try:
        proc = subprocess.run(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, timeout=args.timeout
        )
    except subprocess.TimeoutExpired:
        return dict(name=row, variant=variant, framework="torch", error=f"timed out after {args.timeout} s")
    finally:
        if cache:
            shutil.rmtree(cache, ignore_errors=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode == 0 and lines:
        return json.loads(lines[-1])
    tail = (proc.stderr or proc.stdout).strip()[-1500:]
    return dict(name=row, variant=variant, framework="torch", error=f"exit {proc.returncode}: {tail}")


def format_row(r: dict) -> str:
    if "error" in r:
        return f"{r['name']:9} {r['variant']:14} error: {r['error'].splitlines()[0][:200]}"
    return (
        f"{r['name']:9} {r['variant']:14} {r['threads']:>3} {r['n_critic']!s:>6} {r['steps_per_s']:>9.2f} "
        f"{r['images_per_s']:>9.0f} {r['compile_plus_first_s']:>9.1f} {r['peak_rss_mb']:>8.0f}"
    )


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", default="", help=f"comma-separated rows ({', '.join(ROWS)}); empty = all")
    parser.add_argument(
        "--variants",
        default="eager",
        help=f"comma-separated variants ({', '.join(VARIANTS)}); empty = all; default eager",
    )
    parser.add_argument("--batch_size", type=int, default=64, help="batch per D update (GAN rows)")
    parser.add_argument(
        "--n_critic",
        type=int,
        default=None,
        help="D updates per step; default the row's own: 1, sngan32 5, biggan32 2 (their configs)",
    )
    parser.add_argument("--steps", type=int, default=10, help="steps per timed run")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs; the median is reported")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="torch.set_num_threads")
    parser.add_argument("--fid_batch", type=int, default=50, help="fid row: images per extraction call")
    parser.add_argument(
        "--fid_weights", default=None, help="fid row: jaxgan's converted Inception .npz (default ~/.cache/jaxgan's)"
    )
    parser.add_argument(
        "--omp_wait_policy",
        default="",
        choices=["", "active", "passive"],
        help="OMP_WAIT_POLICY for the measuring processes; '' keeps the environment's. passive "
        "avoids OpenMP spin-waits, which slow multi-threaded torch badly on a shared, "
        "oversubscribed CPU",
    )
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per (row, variant) process")
    parser.add_argument("--json", action="store_true", help="one JSON line per (row, variant)")
    parser.add_argument("--child", default="", help=argparse.SUPPRESS)  # ROW:VARIANT, run in this process
    return parser


def parse_args(argv: list[str] | None = None, parser: argparse.ArgumentParser | None = None) -> argparse.Namespace:
    """The flags, checked: a non-positive count is a usage error naming the flag."""
    parser = parser or make_parser()
    args = parser.parse_args(argv)
    for name in ("batch_size", "steps", "repeats", "threads", "fid_batch"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1, got {getattr(args, name)}.")
    if args.n_critic is not None and args.n_critic < 1:
        parser.error(f"--n_critic must be >= 1 (D updates per step), got {args.n_critic}.")
    return args


def main(argv: list[str] | None = None) -> int:
    parser = make_parser()
    args = parse_args(argv, parser)
    rows = parse_names(args.only, ROWS, "rows", parser)
    variants = parse_names(args.variants, VARIANTS, "variants", parser)
    if importlib.util.find_spec("torch") is None:
        print(INSTALL_HINT, file=sys.stderr)
        return 1

    if args.child:
        row, _, variant = args.child.partition(":")
        if row not in ROWS or variant not in VARIANTS:
            parser.error(f"--child={args.child!r}: expected ROW:VARIANT with ROW in {ROWS}, VARIANT in {VARIANTS}.")
        print(json.dumps(measure(row, variant, args)), flush=True)
        return 0

    if not args.json:
        print(
            f"{'row':9} {'variant':14} {'thr':>3} {'n_crit':>6} {'steps/s':>9} {'img/s':>9} {'compile s':>9} "
            f"{'rss MB':>8}",
            flush=True,
        )
    for row in rows:
        for variant in variants:
            if variant == "channels_last" and row not in CONV_ROWS:
                print(f"{row}: channels_last skipped (no convolutions)", file=sys.stderr, flush=True)
                continue
            r = run_child(row, variant, args)
            print(json.dumps(r) if args.json else format_row(r), flush=True)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # `benchmarks` importable
    sys.exit(main())
