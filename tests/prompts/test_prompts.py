"""Prompt templates: the built-ins, validation of user templates, rendering."""

from __future__ import annotations

import pytest

from slimkit.prompts import PromptTemplate, slim_cot, slim_student
from slimkit.registry import registry


@pytest.mark.parametrize("template", [slim_cot, slim_student])
def test_builtin_templates_render_history(template):
    assert template.validate_for("teacher") == []
    messages = template.render(["Toy Story (1995); Animation", "Heat (1995); Action"])
    text = "\n".join(m["content"] for m in messages)
    assert "1. Toy Story (1995); Animation\n2. Heat (1995); Action" in text
    assert messages[-1]["role"] == "user"
    assert "{history}" not in text


def test_builtins_are_registered():
    reg = registry("prompts")
    for name in ("slim-cot", "slim-student"):
        template = reg.get(name)
        assert template.name == name and "history" in template.variables()


def test_teacher_template_asks_for_three_steps():
    text = slim_cot.render(["x"])[-1]["content"]
    assert all(f"Step {k}" in text for k in (1, 2, 3))


def test_missing_and_unknown_variables_are_problems():
    template = PromptTemplate.from_text("mine", "### user\nTell me about {hist}.")
    problems = template.validate_for("teacher")
    assert any("lacks the required variable {history}" in p for p in problems)
    assert any("unknown variable {hist}" in p for p in problems)


def test_system_block_and_num_items():
    template = PromptTemplate.from_text("t", "### system\nBe brief.\n### user\n{num_items} items:\n{history}")
    messages = template.render(["a", "b", "c"])
    assert messages[0] == {"role": "system", "content": "Be brief."}
    assert messages[1]["content"].startswith("3 items:\n1. a\n2. b\n3. c")


def test_template_from_file(tmp_path):
    path = tmp_path / "my-prompt.txt"
    path.write_text("### user\nHistory:\n{history}\nStep 1, Step 2, Step 3.", encoding="utf-8")
    template = PromptTemplate.from_file(path)
    assert template.name == "my-prompt" and template.validate_for("student") == []
    assert template.render(["x"]) == [{"role": "user", "content": "History:\n1. x\nStep 1, Step 2, Step 3.\n"}]
