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


def test_grounded_templates_get_the_users_facts_from_the_data():
    """{top_categories} and {candidate_items} come from the user's training items only;
    candidates are items other users chose near the same items, never the user's own."""
    import numpy as np

    from slimkit.data.dataset import PreparedDataset
    from slimkit.prompts import slim_cot_grounded, slim_student_grounded
    from slimkit.prompts.history import user_messages

    titles = ["", "Heat (1995)", "Casino (1995)", "Fargo (1996)", "Babe (1995)", "Evita (1996)"]
    genres = ["", "Action, Crime", "Crime, Drama", "Crime, Thriller", "Comedy", "Drama"]
    # user 0: 1, 2, (valid 3, test 5); user 1: 1, 2, 4, 3, then valid/test targets
    sequences = [[1, 2, 3, 5], [1, 2, 4, 3, 5, 5]]
    items = np.array([i for s in sequences for i in s], dtype=np.int64)
    dataset = PreparedDataset(
        name="t", user_ids=["a", "b"], item_ids=[""] + [str(i) for i in range(1, 6)],
        offsets=np.array([0, 4, 10]), items=items, timestamps=np.arange(len(items)),
        item_text=[f"{t}; {g}" if t else "" for t, g in zip(titles, genres)], item_titles=titles,
        has_text=np.ones(6, dtype=bool))

    class Prompt:
        max_items, max_item_chars = 10, 200

    for template in (slim_cot_grounded, slim_student_grounded):
        assert template.validate_for("teacher") == []
        text = user_messages(template, dataset, 0, Prompt)[-1]["content"]
        assert "Crime (2)" in text and "Action (1)" in text
        # next to Heat and Casino in user 1's training items: Fargo and Babe, twice each,
        # one training interaction each (the tie goes to the lower index). Fargo is user 0's
        # validation target, but user 1 trained on it: what the recommender sees too.
        assert "Fargo (1996); Babe (1995)." in text
        assert "Evita" not in text  # a test target of both: in nobody's training items
        assert "{" not in text
    # a constrained step 3 with candidates may name only them; without, anything unseen
    from slimkit.prompts.history import catalogue_facts

    facts = catalogue_facts(dataset)
    assert facts.banned_items(0) == {1, 2}
    assert facts.banned_items(0, candidates=1) == {1, 2, 4, 5}  # only Fargo is left open


def test_plain_templates_render_without_facts():
    assert slim_student.render(["x"], facts={"top_categories": "Drama (3)"}) == slim_student.render(["x"])
