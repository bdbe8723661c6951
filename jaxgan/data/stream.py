"""Streaming training batches: records read on demand from a random-access source through Grain.

`StreamBatcher` gives the batches of `jaxgan.data.pipeline.ArrayBatcher` (the same `StreamOrder`, the
same resize and conversion, so the same numbers) without holding the dataset: batch `step` reads only
this process's records of that batch from its source (`jaxgan.data.sources`), so host memory does not
grow with the dataset. Batches are a pure function of (seed, step, process index, process count): a
resumed run reads from its step on, and no iterator state needs a checkpoint.

Reading runs in a Grain pipeline, `grain.MapDataset.range(start, ...).map(batch_at)`: prefetched by
`num_threads` threads (PIL and TFDS decoding release the GIL) and, with `worker_count` > 0, decoded in
that many worker processes (`mp_prefetch`).
"""

from __future__ import annotations

import sys
from typing import Any, Callable, Iterator

import numpy as np

from jaxgan.common import check_reading_options, to_model_range
from jaxgan.data.pipeline import StreamOrder, read_records
from jaxgan.data.sources import RecordSource


def read_ahead(
    batch_at: Callable[[int], Any], start_step: int, *, num_threads: int, prefetch: int, worker_count: int = 0
) -> Iterator[Any]:
    """batch_at(s) for s = start_step, start_step + 1, ... through a Grain pipeline: `num_threads` threads
    read up to `prefetch` batches ahead; with `worker_count` > 0, in that many worker processes."""
    import grain  # pylint: disable=g-import-not-at-top

    ds = grain.MapDataset.range(int(start_step), sys.maxsize).map(batch_at)
    ds = ds.to_iter_dataset(grain.ReadOptions(num_threads=num_threads, prefetch_buffer_size=prefetch))
    if worker_count:
        from absl import flags  # pylint: disable=g-import-not-at-top

        if not flags.FLAGS.is_parsed():  # Grain's workers read its absl flags; outside an absl app: defaults
            flags.FLAGS.mark_as_parsed()
        ds = ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=worker_count))
    return iter(ds)


class StreamBatcher:
    """Step-indexed model batches ('image' float32 in [-1, 1], 'label' int32) read from `source`.

    `image_size`, `channels`: every record is resized and converted to them (`resize_and_convert`, per
    batch). `num_threads`, `prefetch`: Grain's read threads and the batches read ahead; `worker_count`:
    decoding processes (0: in this process).
    """

    def __init__(
        self,
        source: RecordSource,
        *,
        batch_size: int,
        seed: int,
        image_size: int,
        channels: int,
        process_index: int = 0,
        process_count: int = 1,
        worker_count: int = 0,
        num_threads: int = 2,
        prefetch: int = 4,
    ):
        check_reading_options(worker_count=worker_count, num_threads=num_threads, prefetch=prefetch)
        self.source = source
        self.order = StreamOrder(
            len(source), batch_size=batch_size, seed=seed, process_index=process_index, process_count=process_count
        )
        self.image_size, self.channels = image_size, channels
        self.batch_size, self.local_batch_size = batch_size, self.order.local_batch_size
        self.num_examples = self.order.num_examples
        self.worker_count, self.num_threads, self.prefetch = worker_count, num_threads, prefetch

    def indices_at(self, step: int) -> np.ndarray:
        """The records in this process's part of global batch `step`."""
        return self.order.indices_at(step)

    def batch_at(self, step: int) -> dict[str, Any]:
        """This process's part of global batch `step`, read from the source now."""
        out = read_records(self.source, self.indices_at(step), image_size=self.image_size, channels=self.channels)
        out["image"] = to_model_range(out["image"])
        return out

    def iterate(self, start_step: int = 0) -> Iterator[dict[str, Any]]:
        """batch_at(s) for s = start_step, start_step + 1, ..., read ahead by the Grain pipeline."""
        return read_ahead(
            self.batch_at,
            start_step,
            num_threads=self.num_threads,
            prefetch=self.prefetch,
            worker_count=self.worker_count,
        )

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return self.iterate(0)
