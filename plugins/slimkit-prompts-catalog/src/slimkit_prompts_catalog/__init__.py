"""slimkit-prompts-catalog: teacher and student prompt templates for product catalogues.

Select them in a spec with ``prompt: {teacher: catalog-cot, student: catalog-student}``
(or ``teacher: brief-cot`` for shorter, cheaper teacher answers). Each template is a text
file in ``templates/`` that users can copy and edit; the ``slimkit.prompts`` entry points
point at the :class:`slimkit.prompts.PromptTemplate` objects below.
"""

from __future__ import annotations

from pathlib import Path

from slimkit.plugins import PromptTemplate

__version__ = "0.1.0"

TEMPLATES = Path(__file__).parent / "templates"

CATALOG_COT = PromptTemplate.from_file(
    TEMPLATES / "catalog-cot.txt",
    name="catalog-cot",
    description="Teacher: three steps that name categories and brands explicitly "
    "(catalogues where brand loyalty matters: groceries, games, home goods).",
)
CATALOG_STUDENT = PromptTemplate.from_file(
    TEMPLATES / "catalog-student.txt",
    name="catalog-student",
    description="Student: a short prompt matching catalog-cot's answers.",
)
BRIEF_COT = PromptTemplate.from_file(
    TEMPLATES / "brief-cot.txt",
    name="brief-cot",
    description="Teacher: the three steps as one short line each (fewer tokens per user).",
)

__all__ = ["BRIEF_COT", "CATALOG_COT", "CATALOG_STUDENT", "__version__"]
