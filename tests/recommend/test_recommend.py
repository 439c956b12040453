"""recommend: title matching, user and item lookup (the model path is in tests/cli/test_e2e.py)."""

from __future__ import annotations

import numpy as np
import pytest

from slimkit.data.dataset import PreparedDataset
from slimkit.errors import SlimkitError
from slimkit.recommend import close_ids, item_indices, mentioning_step, title_variants, user_index


def test_title_variants_move_articles_and_drop_years():
    assert ["the", "matrix"] in title_variants("Matrix, The (1999)")
    assert ["shanghai", "triad"] in title_variants("Shanghai Triad (Yao a yao yao dao waipo qiao) (1995)")
    assert ["terminator", "2"] in title_variants("Terminator 2: Judgment Day (1991)")


@pytest.mark.parametrize(
    "title, step",
    [
        ("Matrix, The (1999)", 3),
        ("Empire Strikes Back, The (1980)", 3),
        ("Raiders of the Lost Ark (1981)", 3),  # case and punctuation differ
        ("Star Wars (1977)", 1),
        ("Terminator 2: Judgment Day (1991)", 3),
        ("Schindler's List (1993)", 2),  # fuzzy: "Schindlers List"
        ("Fargo (1996)", None),
        ("It (1990)", None),  # too short to tell from the word "it"
    ],
)
def test_mentioning_step(title, step):
    steps = {
        "1": "The user loves sci-fi like Star Wars and it shows.",
        "2": "Dramas such as Schindlers List; science fiction and action.",
        "3": "Try The Matrix, Empire Strikes Back, raiders of the lost ark and Terminator 2.",
    }
    assert mentioning_step(title, steps) == step


def test_mentioning_step_without_rationale():
    assert mentioning_step("Fargo (1996)", None) is None
    assert mentioning_step("Fargo (1996)", {}) is None


def _dataset():
    users = [str(u) for u in (1, 2, 196, 200, 1960)]
    items = ["", "50", "181", "100"]
    seqs = [[1, 2, 3]] * len(users)
    offsets = np.cumsum([0] + [len(s) for s in seqs])
    flat = np.array([i for s in seqs for i in s])
    return PreparedDataset(
        name="tiny",
        user_ids=users,
        item_ids=items,
        offsets=offsets,
        items=flat,
        timestamps=np.arange(len(flat)),
        item_text=["", "Star Wars (1977); Action", "Return of the Jedi (1983); Action", "Fargo (1996); Crime"],
        item_titles=["", "Star Wars (1977)", "Return of the Jedi (1983)", "Fargo (1996)"],
        has_text=np.ones(4, dtype=bool),
    )


def test_unknown_user_suggests_close_ids():
    data = _dataset()
    assert user_index(data, "196") == 2
    with pytest.raises(SlimkitError) as err:
        user_index(data, "197")
    assert "Unknown user '197'" in err.value.message
    assert "196" in err.value.hint and err.value.exit_code == 2


def test_close_ids_numeric_and_spelled():
    assert close_ids("197", ["1", "196", "200", "1960"])[:2] == ["196", "200"]
    assert "abc1" in close_ids("abc2", ["abc1", "zzz"])


def test_history_items_by_id_or_title():
    data = _dataset()
    assert item_indices(data, ["50", "Fargo (1996)"]) == [1, 3]
    with pytest.raises(SlimkitError) as err:
        item_indices(data, ["50", "999", "nope"])
    assert len(err.value.problems) == 2
    with pytest.raises(SlimkitError):
        item_indices(data, [""])


@pytest.mark.parametrize("fusion", ["slim", "text-match"])
def test_new_user_row_scores_like_the_known_user_with_that_rationale(fusion):
    """A new user given user 3's rationale vector and history scores exactly as user 3."""
    from slimkit.components import implementation
    from slimkit.runtime import setup_torch

    torch = setup_torch()
    torch.manual_seed(0)
    num_users, num_items, dim = 6, 12, 8
    backbone = implementation("backbones", "sasrec")(
        num_items=num_items, max_seq_len=5, hidden_size=8, num_layers=1, num_heads=1, inner_size=16
    )
    rationale = torch.randn(num_users, dim)
    rationale[5] = 0  # a user without a rationale stays without one
    items = torch.randn(num_items + 1, dim)
    items[0] = 0
    model = implementation("fusions", fusion)(
        backbone, num_users=num_users, num_items=num_items, item_vectors=items,
        rationale_vectors=rationale,
    ).eval()
    seq, lengths = torch.tensor([[1, 2, 3]]), torch.tensor([3])
    with torch.no_grad():
        known = model.score_all(seq, lengths, torch.tensor([3]))
    index = model.add_user(rationale[3].numpy())
    assert index == num_users
    with torch.no_grad():
        new = model.score_all(seq, lengths, torch.tensor([index]))
        again = model.score_all(seq, lengths, torch.tensor([3]))
    assert torch.allclose(new, known, atol=1e-5)
    assert torch.allclose(again, known, atol=1e-6)  # known users are untouched


def test_new_user_needs_a_head_with_a_rationale_table():
    from slimkit.components import implementation

    backbone = implementation("backbones", "sasrec")(
        num_items=4, max_seq_len=3, hidden_size=8, num_layers=1, num_heads=1, inner_size=16
    )
    model = implementation("fusions", "none")(
        backbone, num_users=2, num_items=4, item_vectors=None, rationale_vectors=None
    )
    with pytest.raises(SlimkitError, match="no per-user rationale vectors"):
        model.add_user(np.ones(3))
