"""The pipeline spec: one YAML file describing a whole SLIM pipeline.

Sections, in this order: ``dataset, teacher, prompt, student, encoder, backbone, fusion,
train, eval, tracking``. Component sections name a registered component with ``kind:``
and carry its parameters, validated in two steps: the ``kind`` first, then the
component's own ``Params`` model found through the registry, so plugins can add kinds.
Every problem of a spec is collected into one :class:`~slimkit.errors.ConfigError` naming
the path (``backbone.hiden_size``) and suggesting the closest valid name.

* :mod:`.sections`: the base ``Params`` of each kind and the prompt/train/eval/tracking sections;
* :mod:`.validate`: :func:`validate_spec` and :class:`PipelineSpec`;
* :mod:`.load`: :func:`load_spec` (YAML file plus ``--set`` overrides);
* :mod:`.schema`: :func:`spec_json_schema` and :func:`spec_reference_markdown`.
"""

from slimkit.spec.load import apply_overrides, load_spec, parse_override, read_yaml
from slimkit.spec.schema import spec_json_schema, spec_reference_markdown
from slimkit.spec.sections import (
    DEFAULT_KINDS,
    FIXED_SECTIONS,
    SECTION_ORDER,
    BackboneParams,
    DatasetParams,
    EncoderParams,
    EvalSection,
    FusionParams,
    PromptSection,
    StudentParams,
    TeacherParams,
    TrackingSection,
    TrainSection,
)
from slimkit.spec.validate import PipelineSpec, validate_spec

__all__ = [
    "DEFAULT_KINDS",
    "FIXED_SECTIONS",
    "SECTION_ORDER",
    "BackboneParams",
    "DatasetParams",
    "EncoderParams",
    "EvalSection",
    "FusionParams",
    "PipelineSpec",
    "PromptSection",
    "StudentParams",
    "TeacherParams",
    "TrackingSection",
    "TrainSection",
    "apply_overrides",
    "load_spec",
    "parse_override",
    "read_yaml",
    "spec_json_schema",
    "spec_reference_markdown",
    "validate_spec",
]
