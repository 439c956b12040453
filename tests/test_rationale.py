"""parse_steps / format_steps: the one definition of a well-formed three-step rationale."""

from __future__ import annotations

import pytest

from slimkit.rationale import format_steps, is_refusal, parse_steps, steps_to_json

WELL_FORMED = [
    ("Step 1: likes sci-fi\nStep 2: Sci-Fi, Pixar\nStep 3: Alien, Toy Story",
     {1: "likes sci-fi", 2: "Sci-Fi, Pixar", 3: "Alien, Toy Story"}),
    ("**Step 1:** likes sci-fi\n\n**Step 2:** Sci-Fi\n**Step 3:** Alien",
     {1: "likes sci-fi", 2: "Sci-Fi", 3: "Alien"}),
    ("**Step 1**: a\n**Step 2**: b\n**Step 3**: c", {1: "a", 2: "b", 3: "c"}),
    ("### Step 1 - Preferences\nlikes\n### Step 2 - Cats\nx\n### Step 3 - Items\n1. A\n2. B",
     {1: "Preferences\nlikes", 2: "Cats\nx", 3: "Items\n1. A\n2. B"}),
    ("Here is my analysis.\n1. likes sci-fi\n2) Sci-Fi\n3. Alien",
     {1: "likes sci-fi", 2: "Sci-Fi", 3: "Alien"}),
    ("Step 1: a Step 2: b Step 3: c", {1: "a", 2: "b", 3: "c"}),
    ("STEP 1. a\nstep 2 - b\nStep 3) c", {1: "a", 2: "b", 3: "c"}),
    ("Step 1: a, see step 2 below\nStep 2: b\nStep 3: c\nStep 4: d",
     {1: "a, see step 2 below", 2: "b", 3: "c"}),
]

MALFORMED = [
    "",
    "   \n",
    None,
    "Step 1: a\nStep 2:\nStep 3: c",  # empty step
    "Step 1: a\nStep 3: c",  # missing step
    "Step 1: a\nStep 2: b\n1. x\n2. y\n3. z",  # no step 3; a list must not rescue it
    "Step 3: c\nStep 2: b\nStep 1: a",  # out of order
    "I'm sorry, but I can't help with that. Step 1: a Step 2: b Step 3: c",
    "As an AI language model, I cannot recommend items.",
    "Step 1: ***\nStep 2: b\nStep 3: c",  # decoration only
]


@pytest.mark.parametrize(("text", "expected"), WELL_FORMED)
def test_parse_well_formed(text, expected):
    assert parse_steps(text) == expected


@pytest.mark.parametrize("text", MALFORMED)
def test_parse_malformed_is_none(text):
    assert parse_steps(text) is None


def test_refusal_detection_only_at_the_start():
    assert is_refusal("Sorry, I cannot do that.")
    assert not is_refusal("Step 1: the user is sorry about nothing")


def test_format_round_trips():
    steps = {1: "likes\nsci-fi", "2": "Sci-Fi", 3: "Alien,  Toy Story"}
    text = format_steps(steps)
    assert text == "Step 1: likes sci-fi\nStep 2: Sci-Fi\nStep 3: Alien, Toy Story"
    assert parse_steps(text) == {1: "likes sci-fi", 2: "Sci-Fi", 3: "Alien, Toy Story"}
    assert steps_to_json(parse_steps(text)) == {"1": "likes sci-fi", "2": "Sci-Fi", "3": "Alien, Toy Story"}


def test_format_requires_all_steps():
    with pytest.raises(ValueError):
        format_steps({1: "a", 2: "b"})
