"""The old name of `jaxgan.orchestrate`, the GAN zoo's orchestrator (the loop itself is `jaxgan.runner`).

Kept so that `from jaxgan import loop; loop.train_and_evaluate(...)` and the names it used to hold keep
working; new code imports `jaxgan.orchestrate`, `jaxgan.build` and `jaxgan.config`.
"""

from jaxgan.build import build_networks, build_optimizers, build_step  # noqa: F401
from jaxgan.config import DATA_SOURCES, data_shape, eval_metric_names, resolve_schedule, validate  # noqa: F401
from jaxgan.orchestrate import (
    Evaluator,
    SampleFn,
    build_evaluators,
    check_labels_fit,
    dry_run,  # noqa: F401
    evaluation_labels,
    load_training_arrays,
    run_cluster_labels,
    sample_labels_for_grid,
    sample_picture,
    step_batch,
    train_and_evaluate,
    train_functions,
)
from jaxgan.runner import RunHooks, check_workdir, run_training  # noqa: F401
