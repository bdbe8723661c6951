"""What every orchestrator reads from its config the same way (the GAN zoo, translation, video).

- `Schedule`: every period of a run in train steps, the runner's only notion of time.
- `schedule_from_config`: the `*_steps` fields (or their `*_images` twins) as a `Schedule`.
- `check_schedule`: the batch-size and period checks, one message per field.
- `config_errors`: a builder's error renamed after the config field that set the bad value, so that each
  option is checked once, by the code that uses it, and the message still names the field to fix.

Light on purpose: no JAX, no networks; a config is read through `[]` and `.get` only.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import re
from typing import Any, Iterator, Mapping

# Periods every run has (>= 1), and optional ones (>= 0) with what 0 means.
REQUIRED_PERIODS = ("train_steps", "log_every_steps", "sample_every_steps", "checkpoint_every_steps")
OPTIONAL_PERIODS = {
    "eval_every_steps": "0 = never",
    **{
        f"{name}_images": f"0 = use {name}_steps"
        for name in ("train", "sample_every", "checkpoint_every", "eval_every")
    },
}


@dataclasses.dataclass(frozen=True)
class Schedule:
    """Every duration of a run, in train steps (0 = never)."""

    train_steps: int
    log_every: int
    sample_every: int
    checkpoint_every: int
    eval_every: int
    images_per_step: int

    def due(self, every: int, step: int) -> bool:
        """Whether a periodic action with period `every` runs after step `step` (always at the end)."""
        return step == self.train_steps or (every > 0 and step % every == 0)

    def call_sizes(self, start: int, steps_per_call: int, *, with_eval: bool = True) -> Iterator[int]:
        """How many steps each compiled call runs, from `start` to the end: `steps_per_call`
        where no periodic action falls inside the call, single steps up to the next one otherwise."""
        periods = [
            p
            for p in (self.log_every, self.sample_every, self.checkpoint_every, self.eval_every if with_eval else 0)
            if p > 0
        ]
        step = start
        while step < self.train_steps:
            next_event = min([self.train_steps] + [(step // p + 1) * p for p in periods])
            while step + steps_per_call <= next_event and steps_per_call > 1:
                yield steps_per_call
                step += steps_per_call
            while step < next_event:
                yield 1
                step += 1


def _steps(config: Mapping[str, Any], name: str, images_per_step: int) -> int:
    images = config.get(f"{name}_images", 0)
    if images:
        return max(1, math.ceil(images / images_per_step))
    return int(config.get(f"{name}_steps", 0))


def schedule_from_config(config: Mapping[str, Any], *, images_per_step: int) -> Schedule:
    """The run's periods in steps: `<name>_steps`, or `<name>_images` > 0 rounded up to whole steps.

    `images_per_step`: real images one step shows D (the GAN zoo: batch_size * n_critic). A config without
    an `eval_every_*` field never evaluates."""
    return Schedule(
        train_steps=_steps(config, "train", images_per_step),
        log_every=int(config["log_every_steps"]),
        sample_every=_steps(config, "sample_every", images_per_step),
        checkpoint_every=_steps(config, "checkpoint_every", images_per_step),
        eval_every=_steps(config, "eval_every", images_per_step),
        images_per_step=int(images_per_step),
    )


def check_schedule(config: Mapping[str, Any], num_devices: int) -> None:
    """Raises ValueError unless batch_size is a positive multiple of `num_devices`, every required period is
    >= 1 and every optional one the config has is >= 0."""
    batch = config["batch_size"]
    if batch < 1:
        raise ValueError(f"config.batch_size={batch} must be a positive multiple of the device count {num_devices}.")
    if batch % num_devices:
        raise ValueError(
            f"config.batch_size={batch} is not divisible by the {num_devices} devices; set a positive "
            f"multiple of the device count {num_devices}."
        )
    for name in REQUIRED_PERIODS:
        if config[name] < 1:
            raise ValueError(f"config.{name}={config[name]} must be >= 1.")
    for name, zero in OPTIONAL_PERIODS.items():
        if config.get(name, 0) < 0:
            raise ValueError(f"config.{name}={config.get(name)} must be >= 0 ({zero}).")


def _value_at(config: Mapping[str, Any], field: str) -> Any:
    """config[a][b] for field "a.b"; `_MISSING` where a part is absent."""
    value: Any = config
    for part in field.split("."):
        if not hasattr(value, "get"):
            return _MISSING
        value = value.get(part, _MISSING)
    return value


_MISSING = object()


@contextlib.contextmanager
def config_errors(config: Mapping[str, Any] | None = None, **fields: str) -> Iterator[None]:
    """Renames a builder's ValueError after the config field behind it.

    `fields` maps the builder's argument names to config fields, e.g. `fake_labels="model.fake_labels"`: a
    message that starts with the argument is re-raised starting with the field and, read from `config`, its
    value: `n_critic must be an int >= 1, got 0.` -> `config.n_critic=0 must be an int >= 1, got 0.`; a
    sub-field is followed (`regularization.r1_every must ...` -> `config.regularization.r1_every=0 must ...`).
    Any other message is left as it is. The check itself stays in the builder: the one place that option is
    validated.
    """
    try:
        yield
    except ValueError as e:
        message = str(e)
        for argument, field in fields.items():
            rest = message[len(argument) :]
            if not message.startswith(argument) or rest[:1].isalnum() or rest[:1] == "_":
                continue
            sub = re.match(r"\.(\w+)", rest)
            if sub:  # argument.sub_field ...: the config's field of the same name
                field, rest = f"{field}.{sub.group(1)}", rest[sub.end() :]
            value = _MISSING if config is None or rest.startswith("=") else _value_at(config, field)
            raise ValueError(f"config.{field}{'' if value is _MISSING else f'={value!r}'}{rest}") from e
        raise
