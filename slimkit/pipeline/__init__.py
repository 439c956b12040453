"""The whole SLIM pipeline: data -> teach -> distill -> encode -> train.

* :mod:`~slimkit.pipeline.keys`: what each stage reads and its cache key (nothing runs);
* :mod:`~slimkit.pipeline.runner`: :class:`Pipeline`, which alone decides what runs and
  feeds each stage its upstream outputs;
* :mod:`~slimkit.pipeline.run`: :func:`run_pipeline` (``slimkit run``) and its report,
  :func:`run_stage_tracked` (one stage, for the stage commands), both tracked when the
  spec asks;
* :mod:`~slimkit.pipeline.status`: :func:`pipeline_status` (``slimkit status``);
* :mod:`~slimkit.pipeline.shards`: :func:`run_distill_shard` (``slimkit distill --shard``).
"""

from slimkit.pipeline.keys import PIPELINE, needed_stages, stage_keys, stage_spec
from slimkit.pipeline.report import PipelineReport, StageOutcome
from slimkit.pipeline.run import check_stage_name, run_pipeline, run_stage_tracked
from slimkit.pipeline.runner import Pipeline, StageResult, TrainedModel
from slimkit.pipeline.shards import run_distill_shard
from slimkit.pipeline.status import pipeline_status

__all__ = [
    "PIPELINE",
    "Pipeline",
    "PipelineReport",
    "StageOutcome",
    "StageResult",
    "TrainedModel",
    "check_stage_name",
    "needed_stages",
    "pipeline_status",
    "run_distill_shard",
    "run_pipeline",
    "run_stage_tracked",
    "stage_keys",
    "stage_spec",
]
