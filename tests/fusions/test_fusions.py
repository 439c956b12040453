"""Fusion heads: forward/backward for every registered head on every backbone (tiny
sizes), save/load, text-match on items never seen in training, and clear errors."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from slimkit.components import implementation, params_model
from slimkit.errors import SlimkitError
from slimkit.registry import registry

NUM_USERS, NUM_ITEMS, MAX_LEN, TEXT_DIM, HIDDEN = 6, 11, 8, 12, 16
FUSIONS = registry("fusions").names()
BACKBONES = ["sasrec", "gru4rec", "srgnn"]


def make_backbone(name: str = "sasrec", hidden: int = HIDDEN):
    params = params_model("backbones", name)(kind=name, hidden_size=hidden)
    return implementation("backbones", name)(
        num_items=NUM_ITEMS, max_seq_len=MAX_LEN, **params.model_dump(exclude={"kind"})
    )


def side_info(seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    items = torch.nn.functional.normalize(torch.randn(NUM_ITEMS + 1, TEXT_DIM, generator=gen), dim=-1)
    items[0] = 0
    rationales = torch.nn.functional.normalize(torch.randn(NUM_USERS, TEXT_DIM, generator=gen), dim=-1)
    return items, rationales


def make_head(name: str, backbone=None, items=None, rationales=None, **overrides):
    backbone = backbone if backbone is not None else make_backbone()
    default_items, default_rationales = side_info()
    params = params_model("fusions", name)(kind=name, **overrides).model_dump(exclude={"kind"})
    return implementation("fusions", name)(
        backbone,
        num_users=NUM_USERS,
        num_items=NUM_ITEMS,
        item_vectors=default_items if items is None else items,
        rationale_vectors=default_rationales if rationales is None else rationales,
        **params,
    )


def batch():
    item_seq = torch.tensor([[1, 2, 3, 0, 0], [4, 5, 6, 7, 8], [2, 0, 0, 0, 0]])  # (B, L)
    lengths = torch.tensor([3, 5, 1])
    users = torch.tensor([0, 3, 5])
    return item_seq, lengths, users


def test_every_builtin_fusion_is_tested():
    assert {"none", "item-text", "slim", "text-match"} <= set(FUSIONS)


@pytest.mark.parametrize("backbone_name", BACKBONES)
@pytest.mark.parametrize("name", FUSIONS)
def test_forward_backward_shapes(name, backbone_name):
    torch.manual_seed(0)
    model = make_head(name, make_backbone(backbone_name))
    model.train()
    item_seq, lengths, users = batch()
    user = model(item_seq, lengths, users)  # (B, D)
    items = model.item_matrix()  # (N+1, D)
    assert user.shape == (3, model.hidden_size)
    assert items.shape == (NUM_ITEMS + 1, model.hidden_size)
    scores = model.score_all(item_seq, lengths, users)
    assert scores.shape == (3, NUM_ITEMS + 1)
    assert torch.isfinite(scores).all()
    loss = torch.nn.functional.cross_entropy(scores[:, 1:], torch.tensor([3, 7, 1]))
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad and p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)
    model.eval()
    with torch.no_grad():
        assert torch.allclose(model.item_matrix()[0], torch.zeros(model.hidden_size))


@pytest.mark.parametrize("name", FUSIONS)
def test_save_load_roundtrip(name, tmp_path):
    from safetensors.torch import load_file, save_file

    torch.manual_seed(1)
    model = make_head(name)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    model.eval()
    save_file(model.state_dict(), tmp_path / "model.safetensors")
    torch.manual_seed(2)
    again = make_head(name)
    again.load_state_dict(load_file(tmp_path / "model.safetensors"))
    again.eval()
    item_seq, lengths, users = batch()
    with torch.no_grad():
        assert torch.allclose(
            model.score_all(item_seq, lengths, users), again.score_all(item_seq, lengths, users)
        )


@pytest.mark.parametrize("name", ["item-text", "slim"])
def test_id_based_heads_start_as_the_plain_backbone(name):
    """g_f starts as identity on the ID/sequence part: no random text noise at init."""
    torch.manual_seed(3)
    backbone = make_backbone()
    plain = make_head("none", backbone)
    fused = make_head(name, backbone)
    plain.eval(), fused.eval()
    item_seq, lengths, users = batch()
    with torch.no_grad():
        assert torch.allclose(plain.item_matrix(), fused.item_matrix(), atol=1e-6)
        assert torch.allclose(
            plain.score_all(item_seq, lengths, users),
            fused.score_all(item_seq, lengths, users),
            atol=1e-5,
        )


def test_slim_uses_the_rationale():
    torch.manual_seed(4)
    model = make_head("slim")
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    model.eval()
    item_seq, lengths, _ = batch()
    with torch.no_grad():
        a = model(item_seq, lengths, torch.tensor([0, 0, 0]))
        b = model(item_seq, lengths, torch.tensor([1, 1, 1]))
    assert not torch.allclose(a, b)


def test_slim_teacher_users_without_rationale_get_the_missing_vector():
    torch.manual_seed(5)
    items, rationales = side_info()
    rationales[2:] = 0  # the teacher saw users 0 and 1 only
    model = make_head("slim", items=items, rationales=rationales, rationale_source="teacher")
    assert model.has_rationale.tolist() == [True, True, False, False, False, False]
    with torch.no_grad():
        model.user_fusion.missing.fill_(0.3)
        for p in model.parameters():
            if p is not model.user_fusion.missing:
                p.add_(0.05 * torch.randn_like(p))
    model.eval()
    item_seq, lengths, _ = batch()
    with torch.no_grad():
        unseen_a = model(item_seq, lengths, torch.tensor([2, 2, 2]))
        unseen_b = model(item_seq, lengths, torch.tensor([5, 5, 5]))
        seen = model(item_seq, lengths, torch.tensor([0, 0, 0]))
    assert torch.allclose(unseen_a, unseen_b)
    assert not torch.allclose(unseen_a, seen)


@pytest.mark.parametrize("mode", ["concat", "add", "gate"])
def test_slim_modes(mode):
    model = make_head("slim", mode=mode)
    item_seq, lengths, users = batch()
    scores = model.score_all(item_seq, lengths, users)  # (B, N + 1)
    assert scores.shape == (3, NUM_ITEMS + 1) and torch.isfinite(scores).all()
    scores.sum().backward()
    # Every mode trains the backbone and the fusion layers from the scores.
    for name, param in model.named_parameters():
        if param.requires_grad and "item_embedding" not in name:
            assert param.grad is not None, f"{mode}: no gradient reaches {name}"


def test_text_match_has_no_item_id_dependence():
    """Scores do not change when the backbone's item ID embedding changes."""
    torch.manual_seed(6)
    model = make_head("text-match")
    model.eval()
    item_seq, lengths, users = batch()
    with torch.no_grad():
        before = model.score_all(item_seq, lengths, users)
        model.backbone.item_embedding.weight.normal_()
        after = model.score_all(item_seq, lengths, users)
    assert torch.allclose(before, after)


def test_text_match_scores_an_item_never_seen_in_training():
    """Item 11 never occurs in training; its text equals item 3's, and user 0's rationale
    is item 3's text: after training, item 11 scores like item 3 and near the top."""
    torch.manual_seed(7)
    items, rationales = side_info(7)
    unseen = NUM_ITEMS  # 11
    items[unseen] = items[3]
    rationales[0] = items[3]
    model = make_head("text-match", items=items, rationales=rationales)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    # Training data: user u's next item; item 11 is never an input nor a target.
    seqs = torch.tensor([[1, 2, 0], [4, 5, 6], [7, 8, 9], [2, 4, 0], [9, 10, 0], [5, 6, 7]])
    lens = torch.tensor([2, 3, 3, 2, 2, 3])
    users = torch.arange(NUM_USERS)
    targets = torch.tensor([3, 7, 10, 8, 1, 2])
    assert unseen not in seqs and unseen not in targets
    model.train()
    for _ in range(60):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model.score_all(seqs, lens, users), targets)
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        scores = model.score_all(seqs, lens, users)
    assert torch.isclose(scores[0, unseen], scores[0, 3], atol=1e-5)
    ranking = scores[0, 1:].argsort(descending=True) + 1
    assert unseen in ranking[:2].tolist()


def test_text_match_hidden_size_must_fit_the_backbone():
    with pytest.raises(SlimkitError, match="hidden_size"):
        make_head("text-match", hidden_size=HIDDEN * 2, use_history=True)
    # Without the history the matching space is free.
    model = make_head("text-match", hidden_size=HIDDEN * 2, use_history=False)
    assert model.item_matrix().shape == (NUM_ITEMS + 1, HIDDEN * 2)


def test_stale_vectors_are_a_clear_error():
    items, rationales = side_info()
    with pytest.raises(SlimkitError, match="encode stage"):
        make_head("slim", items=items[:5])
    with pytest.raises(SlimkitError, match="encode stage"):
        make_head("text-match", rationales=rationales[:3])
    with pytest.raises(SlimkitError, match="different encoders"):
        make_head("text-match", rationales=torch.randn(NUM_USERS, TEXT_DIM + 1))


@pytest.mark.parametrize("standardize", [True, False])
@pytest.mark.parametrize("name", ["slim", "text-match"])
def test_add_user_places_a_new_user_beside_the_known_ones(name, standardize):
    torch.manual_seed(0)
    _, rationales = side_info()
    model = make_head(name, standardize=standardize).eval()
    with torch.no_grad():  # leave the initial state, where slim ignores the rationale
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    item_seq, lengths, _ = batch()
    row = slice(1, 2)
    with torch.no_grad():
        known = model.score_all(item_seq[row], lengths[row], torch.tensor([3]))  # (1, N+1)
        index = model.add_user(rationales[3])
        assert index == NUM_USERS and model.num_users == NUM_USERS + 1
        # The raw vector is transformed like the known users' rows: same scores.
        assert torch.allclose(model.score_all(item_seq[row], lengths[row], torch.tensor([index])),
                              known, atol=1e-6)
        # Another vector gives another user; a zero vector means "no rationale".
        other = model.add_user(rationales[0] + rationales[5])
        assert not torch.allclose(
            model.score_all(item_seq[row], lengths[row], torch.tensor([other])), known)
        empty = model.add_user(torch.zeros(TEXT_DIM))
        assert not bool(model.has_rationale[empty]) and empty == NUM_USERS + 2


def test_add_user_refuses_a_vector_of_another_encoder():
    model = make_head("slim")
    with pytest.raises(SlimkitError, match="dimension 5, but the model's rationale vectors have 12"):
        model.add_user(torch.ones(5))


@pytest.mark.parametrize("name", ["none", "item-text"])
def test_heads_without_user_features_refuse_new_users_clearly(name):
    with pytest.raises(SlimkitError, match="keeps no per-user rationale vectors"):
        make_head(name).add_user(torch.ones(TEXT_DIM))
