"""The one module a slimkit plugin author imports.

For every component kind it gives the typed contract (a ``Protocol``), the base of the
kind's parameters (a strict pydantic model your ``Params`` subclasses) and the check your
tests call. A component is registered as a :class:`Component` (its ``Params`` and
``"module:attr"`` of its implementation) in the kind's entry-point group.

=====================  ==========================  ==================  ==================
kind (entry points)    contract                    Params base         check
=====================  ==========================  ==================  ==================
backbones              Backbone,                   BackboneParams      check_backbone
                       EmbeddedInputBackbone,
                       PositionalBackbone,
                       EmbeddedPositionalBackbone
fusions                FusionHead -> Recommender   FusionParams        check_fusion
                       (subclass RecommenderBase)
encoders               Encoder                     EncoderParams       check_encoder
teachers               Teacher                     TeacherParams       check_teacher
students               Student                     StudentParams       check_student
datasets               DatasetLoader               DatasetParams       check_dataset
prompts                Prompt (PromptTemplate)     (none: a template)  check_prompt
=====================  ==========================  ==================  ==================

A plugin's tests also ask :func:`registry` / :func:`implementation` whether its entry
point is found and :func:`validate_spec` whether a spec selects it. Checks raise
:class:`ContractError` (an ``AssertionError``) naming the broken rule and its
fix. Importing this module imports no torch: the contracts name torch types as strings,
the checks import torch when they run, and :data:`RecommenderBase` (the torch base class
of fusion heads, :class:`slimkit.fusions.base.Recommender`) loads on first access.
docs/plugins.md walks through every kind.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from slimkit.backbones.protocol import (
    Backbone,
    EmbeddedInputBackbone,
    EmbeddedPositionalBackbone,
    PositionalBackbone,
)
from slimkit.checks._common import ContractError, teacher_jobs, tiny_batch, tiny_dataset
from slimkit.checks.backbone import check_backbone
from slimkit.checks.dataset import check_dataset
from slimkit.checks.encoder import check_encoder
from slimkit.checks.fusion import check_fusion
from slimkit.checks.prompt import check_prompt
from slimkit.checks.student import check_student
from slimkit.checks.teacher import check_teacher
from slimkit.components import Component, implementation
from slimkit.data.loaders.protocol import DatasetLoader
from slimkit.encoders.protocol import Encoder
from slimkit.fusions.protocol import FusionHead, Recommender
from slimkit.prompts import PromptTemplate
from slimkit.prompts.protocol import Prompt
from slimkit.rationale import format_steps, parse_steps
from slimkit.registry import registry
from slimkit.spec import (
    BackboneParams,
    DatasetParams,
    EncoderParams,
    FusionParams,
    StudentParams,
    TeacherParams,
    validate_spec,
)
from slimkit.students.protocol import Student
from slimkit.teachers.base import TeachContext, TeacherJob, make_row
from slimkit.teachers.protocol import Teacher

if TYPE_CHECKING:
    from slimkit.fusions.base import Recommender as RecommenderBase

__all__ = [  # noqa: RUF022 - grouped by what a plugin author looks for
    # contracts
    "Backbone",
    "EmbeddedInputBackbone",
    "PositionalBackbone",
    "EmbeddedPositionalBackbone",
    "FusionHead",
    "Recommender",
    "RecommenderBase",
    "Encoder",
    "Teacher",
    "Student",
    "DatasetLoader",
    "Prompt",
    "PromptTemplate",
    # parameters and registration
    "BackboneParams",
    "FusionParams",
    "EncoderParams",
    "TeacherParams",
    "StudentParams",
    "DatasetParams",
    "Component",
    # a plugin's own tests: is it registered, does a spec select it
    "registry",
    "implementation",
    "validate_spec",
    # checks and their tiny inputs
    "ContractError",
    "check_backbone",
    "check_fusion",
    "check_encoder",
    "check_teacher",
    "check_student",
    "check_dataset",
    "check_prompt",
    "tiny_batch",
    "tiny_dataset",
    "teacher_jobs",
    # what a teacher builds its rows with
    "TeacherJob",
    "TeachContext",
    "make_row",
    "format_steps",
    "parse_steps",
]


def __getattr__(name: str) -> Any:
    # RecommenderBase subclasses torch's nn.Module: import it only when asked for, so
    # `import slimkit.plugins` (and `slimkit plugins list`) stays free of torch.
    if name == "RecommenderBase":
        from slimkit.fusions.base import Recommender as RecommenderBase

        return RecommenderBase
    raise AttributeError(f"module 'slimkit.plugins' has no attribute {name!r}")
