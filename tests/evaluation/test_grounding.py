"""Grounding metrics on hand-made rationales whose answers are known."""

from __future__ import annotations

import numpy as np
import pytest

from slimkit.data.dataset import PreparedDataset
from slimkit.evaluation.grounding import (
    Grounder,
    collapse,
    collapse_warning,
    distinct_n,
    repeated_sentence_rate,
)

TITLES = ["", "Matrix, The (1999)", "Toy Story (1995)", "Heat (1995)", "Alien (1979)",
          "Aladdin (1992)", "Die Hard (1988)", "Lion King, The (1994)"]
GENRES = ["", "Action, Sci-Fi", "Animation, Children's, Comedy", "Action, Crime, Thriller",
          "Horror, Sci-Fi", "Animation, Children's, Musical", "Action, Thriller",
          "Animation, Children's, Musical"]


def dataset() -> PreparedDataset:
    """Two users: 0 watched action films (1, 3, 6, then test 4), 1 animation (2, 5, ...)."""
    sequences = [[1, 3, 6, 4, 4], [2, 5, 2, 7, 7]]  # last two: validation, test targets
    items = np.array([i for s in sequences for i in s], dtype=np.int64)
    offsets = np.array([0, 5, 10], dtype=np.int64)
    return PreparedDataset(
        name="tiny", user_ids=["u0", "u1"], item_ids=[""] + [str(i) for i in range(1, 8)],
        offsets=offsets, items=items, timestamps=np.arange(len(items), dtype=np.int64),
        item_text=[f"{t}; {g}" if t else "" for t, g in zip(TITLES, GENRES)],
        item_titles=TITLES, has_text=np.ones(8, dtype=bool),
    )


@pytest.fixture(scope="module")
def grounder():
    return Grounder(dataset())


def test_check_names_categories_items_and_inventions(grounder):
    text = ("Step 1: The user likes tense action films.\n"
            "Step 2: Recommended categories: Action, Thrillers, Horror, Thrillery, Actor John Cadey.\n"
            "Step 3: Recommended items: The Matrix, Alien, Blade Runner, Lion King, The.")
    c = grounder.check(0, text)
    assert c["step2_categories"] == ["Action", "Thriller", "Horror"]
    assert c["step2_in_history"] == 2  # Horror is not among user 0's training items' genres
    assert c["step2_unresolved"] == ["Thrillery", "Actor John Cadey"]
    assert c["step3_items"] == [1, 4, 7]
    assert c["step3_in_history"] == 1  # The Matrix
    assert c["step3_unresolved"] == ["Blade Runner"] and c["step3_categories"] == 0
    assert c["step3_hit"] is True  # Alien is user 0's test item


def test_metrics_aggregate_known_answers(grounder):
    good0 = ("Step 1: Action fan.\nStep 2: Action, Crime.\nStep 3: Alien; Toy Story.")
    good1 = ("Step 1: Likes animation.\nStep 2: Animation, Musical, Horror.\nStep 3: Matrix, The; Nowhere Film.")
    m = grounder.metrics({0: good0, 1: good1})
    assert m["users"] == 2 and m["reach_step3"] == 1.0
    assert m["category_precision"] == pytest.approx(4 / 5)  # Horror: not in user 1's history
    # top 3 of user 0: Action (3), Thriller (2), Sci-Fi (1, first of the ties): Action named;
    # user 1: Animation (3), Children's (3), Comedy (2): Animation named.
    assert top3(grounder, 0) == ["Action", "Thriller", "Sci-Fi"]
    assert m["category_recall"] == pytest.approx(1 / 3)
    assert m["resolution_share"] == pytest.approx(3 / 4)
    assert m["in_history_share"] == 0.0
    assert m["hallucination_rate"] == pytest.approx(1 / 4)  # "Nowhere Film"
    assert m["step2_unknown_rate"] == 0.0
    assert m["hit_rate"] == 0.5
    assert m["names_item_share"] == 1.0
    assert m["identical_share"] == 0.5


def top3(grounder, user):
    return [c for c, _ in grounder.facts.user_facts(user, top=3, recent=0, candidates=0).top_categories]


def test_malformed_rationales_do_not_reach_step3(grounder):
    m = grounder.metrics({0: "I like films.", 1: "Step 1: x\nStep 2: Comedy\nStep 3: Aladdin"})
    assert m["reach_step3"] == 0.5
    assert m["resolution_share"] == 1.0 and m["in_history_share"] == 1.0


def test_repetition_measures():
    same = "Step 1: The user likes the most recent item.\nStep 2: The user likes the most recent item.\n" \
           "Step 3: The user likes the most recent item."
    assert repeated_sentence_rate(same) == pytest.approx(2 / 3)
    assert repeated_sentence_rate("One. Two. Three.") == 0.0
    assert distinct_n("a b a b a b") == pytest.approx(2 / 5)
    assert distinct_n("a b c d") == 1.0
    assert distinct_n("a") is None


def test_collapse_counts_identical_and_near_identical_rationales():
    texts = ["The user likes action films a lot."] * 3 + ["The user likes action films a lot!!"] \
        + ["the user likes action films a lots."] + ["Something else entirely, about cartoons."] * 2 \
        + ["A third text.", "A fourth one, not alike.", "And a fifth, about westerns."]
    out = collapse(texts)
    assert out["identical_share"] == pytest.approx(4 / 10)  # punctuation and case dropped
    assert out["near_identical_share"] == pytest.approx(5 / 10)  # one letter more is near
    warning = collapse_warning(out)
    assert warning and "repetition_penalty" in warning and "50%" in warning
    distinct = ["Likes westerns.", "Enjoys cartoons for children.", "Watches horror late at night.",
                "Mostly dramas from the 1950s."]
    assert collapse_warning(collapse(distinct)) is None  # 25 % each, but nobody shares one
    assert collapse_warning(collapse(distinct * 2)) is not None


def test_categories_in_step3_are_names_but_neither_items_nor_inventions(grounder):
    m = grounder.metrics({0: "Step 1: x\nStep 2: Action\nStep 3: Action, Horror; Alien; Actor John Cadey"})
    assert m["resolution_share"] == pytest.approx(1 / 4)  # Alien, out of 4 names
    assert m["hallucination_rate"] == pytest.approx(1 / 4)  # Actor John Cadey
