"""slimkit-prompts-catalog's own tests: the templates meet slimkit's prompt contract."""

from __future__ import annotations

import pytest
from slimkit_prompts_catalog import BRIEF_COT, CATALOG_COT, CATALOG_STUDENT, __version__

from slimkit.plugins import check_prompt, registry, validate_spec


@pytest.mark.parametrize(
    "template, role",
    [(CATALOG_COT, "teacher"), (BRIEF_COT, "teacher"), (CATALOG_STUDENT, "student")],
)
def test_template_meets_the_prompt_contract(template, role):
    check_prompt(template, role=role)


@pytest.mark.parametrize("name", ["catalog-cot", "catalog-student", "brief-cot"])
def test_templates_are_registered_through_entry_points(name):
    entry = registry("prompts").entry(name)
    assert (entry.distribution, entry.version) == ("slimkit-prompts-catalog", __version__)
    assert registry("prompts").get(name).name == name


def test_templates_are_selectable_in_a_spec():
    spec = validate_spec({"prompt": {"teacher": "catalog-cot", "student": "catalog-student"}})
    assert (spec.prompt.teacher, spec.prompt.student) == ("catalog-cot", "catalog-student")
    assert ("prompts", "catalog-cot") in spec.components()


def test_catalog_teacher_names_brands_and_the_history_count():
    history = ["Yogi Green Tea; Grocery > Tea; Yogi", "Lodge Skillet; Kitchen > Cookware; Lodge"]
    messages = CATALOG_COT.render(history)
    assert [m["role"] for m in messages] == ["system", "user"]
    user = messages[1]["content"]
    assert "these 2 products" in user and "1. Yogi Green Tea" in user and "brand" in user
    assert "2. Lodge Skillet" in user.split("1. Yogi Green Tea")[1]
