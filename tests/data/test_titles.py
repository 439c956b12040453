"""Title resolution: the names a model writes, resolved to catalogue items."""

from __future__ import annotations

import pytest

from slimkit.data.titles import TitleIndex, title_key

CATALOGUE = ["", "Matrix, The (1999)", "Toy Story (1995)", "Heat (1995)", "It (1990)",
             "Shanghai Triad (Yao a yao yao dao waipo qiao) (1995)",
             "Sense and Sensibility (1995)", "Star Wars (1977)", "Die Hard 2 (1990)",
             "Die Hard (1988)", "Amélie (2001)", "Men in Black (1997)", "Hamlet (1990)",
             "Hamlet (1996)", "Dumb & Dumber (1994)", "Glimmer Man, The (1996)"]


@pytest.fixture(scope="module")
def index():
    return TitleIndex(CATALOGUE)


@pytest.mark.parametrize("name, item", [
    ("The Matrix", 1), ("Matrix, The", 1), ("matrix (1999)", 1), ("THE MATRIX!", 1),
    ('"The Matrix"', 1), ("The Matrixx", 1),  # misspelled, still the one title near it
    ("Toy Stroy", 2), ("Heat", 3), ("heat (1995)", 3),
    ("Shanghai Triad", 5), ("Yao a yao yao dao waipo qiao", 5),
    ("Sense & Sensibility", 6), ("Star Wars: Episode IV - A New Hope", 7),
    ("Die Hard 2", 8), ("Die Hard", 9), ("Amelie", 10), ("men in black", 11),
    ("Hamlet", 12), ("Hamlet (1996)", 13), ("Dumb and Dumber", 14), ("Dumb & Dumber (1994", 14),
])
def test_resolves_hard_cases(index, name, item):
    assert index.resolve(name) == item


@pytest.mark.parametrize("name", ["Inception", "Heal", "Matrix Reloaded, The", "Actor John Cadey",
                                  "Thrillery", "", "   ", "The"])
def test_does_not_resolve_what_is_not_there(index, name):
    assert index.resolve(name) is None


def test_title_key_ignores_year_articles_case_and_punctuation():
    assert title_key("Matrix, The (1999)") == title_key("the matrix") == title_key("MATRIX.") == "matrix"


def test_find_titles_in_free_text(index):
    text = "I recommend The Matrix, Toy Story and Sense and Sensibility; also Heat, but not heat or it."
    assert index.find(text) == [1, 2, 6, 3]  # "heat" and "it" in lower case are words, not titles
    assert index.find("Die Hard 2 before Die Hard") == [8, 9]  # the longest title wins
    text = "Recommended items: Glimmer Man, The (1996); Dumb & Dumber (1994); Hamlet (1996)"
    spans = index.find_spans(text)
    assert [item for item, _, _ in spans] == [15, 14, 13]
    assert [text[s:e] for _, s, e in spans] == ["Glimmer Man, The (1996)", "Dumb & Dumber (1994)",
                                                "Hamlet (1996)"]
