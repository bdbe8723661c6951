"""Apply a trained CycleGAN / pix2pix generator to a folder of images (tools/translate.py's engine).

`load_translator(workdir)` rebuilds the networks from WORKDIR/config.json and
restores the generator weights of the latest checkpoint. `translate_folder`
checks every input first (readable, the direction's channel count, a size the
generator accepts) and every output name (nothing is overwritten unless asked),
and only then writes one PNG per input, the same size as the input.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from PIL import Image

from jaxgan import checkpoint
from jaxgan.common import to_model_range, to_uint8
from jaxgan.data import translation as tdata
from jaxgan.translation.nets import check_image_size, size_multiple
from jaxgan.translation.steps import CycleGANStep, TranslationStep

DIRECTIONS = ("AtoB", "BtoA")


@dataclasses.dataclass
class Translator:
    """A trained run's generators: `translate(uint8 [H, W, C], direction) -> uint8 [H, W, C']`."""

    step: TranslationStep
    g_params: Any
    trained_steps: int

    def __post_init__(self):
        self._fn = jax.jit(lambda p, x, direction: self.step.translate(p, x, direction), static_argnums=2)

    def check_direction(self, direction: str) -> None:
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}.")
        if direction == "BtoA" and not isinstance(self.step, CycleGANStep):
            raise ValueError("This run is pix2pix: it has one generator, A to B; use --direction=AtoB.")

    def input_channels(self, direction: str) -> int:
        return (self.step.shape_a if direction == "AtoB" else self.step.shape_b)[2]

    def size_multiple(self, direction: str) -> int:
        net = (
            self.step.generator
            if not isinstance(self.step, CycleGANStep)
            else (self.step.g_ab if direction == "AtoB" else self.step.g_ba)
        )
        return size_multiple(net)

    def translate(self, image: np.ndarray, direction: str = "AtoB") -> np.ndarray:
        x = to_model_range(np.asarray(image, np.uint8))[None]
        return np.asarray(to_uint8(self._fn(self.g_params, jnp.asarray(x), direction)))[0]


def load_translator(workdir: str) -> Translator:
    """The generator(s) of the latest checkpoint in `workdir`, built from its config.json."""
    from jaxgan.translation import orchestrate  # pylint: disable=g-import-not-at-top

    path = os.path.join(workdir, "config.json")
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"{path} not found: --workdir must be a directory written by experiments/cyclegan.py "
            "or experiments/pix2pix.py."
        )
    with open(path) as f:
        config = ml_collections.ConfigDict(json.load(f))
    model = config.get("model")
    if not isinstance(model, str):  # the GAN zoo's config has model.name; translation's has model: "cyclegan"
        name = model.get("name", "?") if hasattr(model, "get") else model
        raise ValueError(
            f"{workdir} is a GAN-zoo run (model.name={name!r}, written by experiments/train.py), not an "
            "image-translation run; sample it with tools/sample.py --workdir=... instead."
        )
    step = orchestrate.build_step(config)
    target = step.abstract_state()
    with checkpoint.checkpoint_manager(os.path.join(workdir, "checkpoints"), read_only=True) as manager:
        state, restored = checkpoint.restore_latest(manager, target)
    if restored is None:
        raise FileNotFoundError(
            f"No checkpoint in {os.path.join(workdir, 'checkpoints')}; train first (or wait for "
            "the first checkpoint_every_steps)."
        )
    return Translator(step=step, g_params=state.g.params, trained_steps=restored)


def translate_folder(
    translator: Translator, input_dir: str, out_dir: str, *, direction: str = "AtoB", overwrite: bool = False
) -> list[str]:
    """Translates every PNG/JPEG in `input_dir` into `out_dir/<name>.png`; returns the written paths.

    All inputs and output names are checked before anything is written.
    """
    translator.check_direction(direction)
    channels, multiple = translator.input_channels(direction), translator.size_multiple(direction)
    inputs = tdata.list_images(input_dir)
    images = []
    for path in inputs:
        image = tdata.read_image(
            path, channels=channels, fix=f"; this run's {direction} generator takes {channels}-channel images."
        )
        check_image_size(image.shape[0], image.shape[1], multiple=multiple, what=path)
        images.append(image)
    outputs = [os.path.join(out_dir, os.path.splitext(os.path.basename(p))[0] + ".png") for p in inputs]
    seen: dict[str, str] = {}
    for src, dst in zip(inputs, outputs):
        if dst in seen:
            raise ValueError(f"{src} and {seen[dst]} would both be written to {dst}; rename one of them.")
        seen[dst] = src
    existing = [p for p in outputs if os.path.exists(p)]
    if existing and not overwrite:
        raise FileExistsError(
            f"{len(existing)} output file(s) already exist, e.g. {existing[0]}; nothing was "
            "written. Choose another --out folder, or pass --overwrite to replace them."
        )
    os.makedirs(out_dir, exist_ok=True)
    for image, dst in zip(images, outputs):
        out = translator.translate(image, direction)
        Image.fromarray(out[..., 0] if out.shape[-1] == 1 else out).save(dst)
    return outputs
