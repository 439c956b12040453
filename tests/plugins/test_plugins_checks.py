"""slimkit.plugins' contract checks pass on real components and catch broken ones."""

from __future__ import annotations

import functools
import hashlib

import numpy as np
import pytest
import torch
from torch import nn

from slimkit.components import implementation
from slimkit.errors import SlimkitError
from slimkit.plugins import (
    ContractError,
    PromptTemplate,
    RecommenderBase,
    check_backbone,
    check_encoder,
    check_fusion,
    check_prompt,
    check_teacher,
    format_steps,
    make_row,
    tiny_batch,
    tiny_dataset,
)
from slimkit.prompts import slim_cot, slim_student
from slimkit.registry import registry


# --- backbones ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["sasrec", "gru4rec", "srgnn", "bert4rec"])
def test_every_registered_backbone_passes(name):
    report = check_backbone(implementation("backbones", name), hidden_size=16)
    assert report["checked"][-1] == "save/load"


class _Mean(nn.Module):
    """A correct mean-pooling backbone; the broken variants below change one thing."""

    def __init__(self, num_items, max_seq_len, hidden_size=8):
        super().__init__()
        self.hidden_size = hidden_size
        self.item_embedding = nn.Embedding(num_items + 1, hidden_size, padding_idx=0)
        self.out = nn.Linear(hidden_size, hidden_size)

    def encode_embedded(self, emb, item_seq, lengths):
        keep = (item_seq > 0).unsqueeze(-1).float()  # (B, L, 1)
        return self.out((emb * keep).sum(1) / lengths.unsqueeze(-1).float())  # (B, D)

    def forward(self, item_seq, lengths):
        return self.encode_embedded(self.item_embedding(item_seq), item_seq, lengths)


class _AveragesOverPadding(_Mean):
    def forward(self, item_seq, lengths):
        return self.out(self.item_embedding(item_seq).mean(1))  # divides by L, not lengths


class _UsesPaddedEmbeddings(_Mean):
    def encode_embedded(self, emb, item_seq, lengths):
        return self.out(emb.sum(1) / lengths.unsqueeze(-1).float())  # trusts padded rows


class _DropoutInEval(_Mean):
    def forward(self, item_seq, lengths):
        return nn.functional.dropout(super().forward(item_seq, lengths), 0.5, training=True)


class _WrongEmbedding(_Mean):
    def __init__(self, num_items, max_seq_len, hidden_size=8):
        super().__init__(num_items, max_seq_len, hidden_size)
        self.item_embedding = nn.Embedding(num_items, hidden_size)  # no padding row


class _StateOutsideParameters(_Mean):
    def __init__(self, num_items, max_seq_len, hidden_size=8):
        super().__init__(num_items, max_seq_len, hidden_size)
        self.scale = torch.randn(hidden_size)  # a plain attribute: not saved

    def encode_embedded(self, emb, item_seq, lengths):
        return super().encode_embedded(emb, item_seq, lengths) * self.scale


class _WrongShape(_Mean):
    def forward(self, item_seq, lengths):
        return self.item_embedding(item_seq)  # (B, L, D)


class _NoPositionalArgs(_Mean):
    def __init__(self, *, num_items, hidden_size=8):
        super().__init__(num_items, 1, hidden_size)


def test_a_correct_small_backbone_passes():
    assert "encode_embedded" in check_backbone(_Mean)["checked"]


@pytest.mark.parametrize(
    "cls, message",
    [
        (_AveragesOverPadding, "extra padding columns changed the output"),
        (_UsesPaddedEmbeddings, "padded positions held non-zero vectors"),
        (_DropoutInEval, "two eval-mode forwards differ"),
        (_WrongEmbedding, "expected Embedding(24, 8, padding_idx=0)"),
        (_StateOutsideParameters, "a reloaded copy gives other outputs"),
        (_WrongShape, "expected (B, D) = (4, 8)"),
        (_NoPositionalArgs, "cannot be built as cls(num_items, max_seq_len, **params)"),
    ],
)
def test_broken_backbones_fail_with_a_message_that_says_what(cls, message):
    with pytest.raises(ContractError) as info:
        check_backbone(cls)
    assert message in str(info.value)
    assert isinstance(info.value, AssertionError)  # pytest reports it as a failed test


class _CausalMean(_Mean):
    """A correct causal backbone: the mean of the items up to each position."""

    def encode_embedded_positions(self, emb, item_seq, lengths):
        keep = (item_seq > 0).unsqueeze(-1).float()  # (B, L, 1)
        counts = keep.cumsum(1).clamp(min=1)  # (B, L, 1) real items up to each position
        return self.out((emb * keep).cumsum(1) / counts)  # (B, L, D)

    def forward_positions(self, item_seq, lengths):
        return self.encode_embedded_positions(self.item_embedding(item_seq), item_seq, lengths)


class _PeeksAhead(_CausalMean):
    def forward_positions(self, item_seq, lengths):
        whole = self.forward(item_seq, lengths)  # (B, D): every real item, at every position
        return whole.unsqueeze(1).expand(-1, item_seq.size(1), -1)


class _LastPositionDiffers(_CausalMean):
    def forward_positions(self, item_seq, lengths):
        return super().forward_positions(item_seq, lengths) * 2


class _PositionsSeePadding(_CausalMean):
    def forward_positions(self, item_seq, lengths):
        out = super().forward_positions(item_seq, lengths)  # (B, L, D)
        steps = torch.arange(item_seq.size(1)).unsqueeze(0)  # (1, L)
        not_last = (steps != (lengths - 1).unsqueeze(1)).unsqueeze(-1)  # (B, L, 1)
        return out + not_last * 0.01 * item_seq.size(1)  # earlier positions see the width


class _EmbeddedPositionsTrustPadding(_CausalMean):
    def encode_embedded_positions(self, emb, item_seq, lengths):
        counts = torch.arange(1, emb.size(1) + 1).view(1, -1, 1)  # (1, L, 1)
        out = self.out(emb.cumsum(1) / counts)  # (B, L, D), padded rows summed in
        return out + emb.sum(1, keepdim=True) * 0.1  # padded vectors leak everywhere

    def forward_positions(self, item_seq, lengths):  # correct on ID embeddings
        emb = self.item_embedding(item_seq)
        return _CausalMean.encode_embedded_positions(self, emb, item_seq, lengths)


def test_a_correct_causal_backbone_passes_the_positional_checks():
    checked = check_backbone(_CausalMean)["checked"]
    assert {"forward_positions", "encode_embedded_positions"} <= set(checked)
    # A backbone without forward_positions skips them (it trains per prefix).
    assert "forward_positions" not in check_backbone(_Mean)["checked"]


@pytest.mark.parametrize(
    "cls, message",
    [
        (_PeeksAhead, "changed an earlier position's output (max diff"),
        (_LastPositionDiffers, "last real position differs from forward"),
        (_PositionsSeePadding, "extra padding columns changed forward_positions"),
        (_EmbeddedPositionsTrustPadding, "encode_embedded_positions"),
    ],
)
def test_broken_positional_backbones_fail(cls, message):
    with pytest.raises(ContractError) as info:
        check_backbone(cls)
    assert message in str(info.value)


@pytest.mark.parametrize("name", ["sasrec", "gru4rec"])
def test_causal_builtins_pass_the_positional_checks(name):
    checked = check_backbone(implementation("backbones", name), hidden_size=16)["checked"]
    assert {"forward_positions", "encode_embedded_positions"} <= set(checked)


@pytest.mark.parametrize("fusion", ["none", "item-text", "slim", "text-match"])
def test_every_fusion_head_passes_the_positional_check_on_a_causal_backbone(fusion):
    cls = functools.partial(implementation("backbones", "sasrec"), hidden_size=16, num_layers=1)
    report = check_fusion(implementation("fusions", fusion), backbone=cls)
    assert "forward_positions" in report["checked"]


class _PositionsOffByOne(RecommenderBase):
    """Per-position vectors shifted by one position: the last one is not forward's."""

    def forward(self, item_seq, lengths, users):
        return self.backbone(item_seq, lengths)

    def item_matrix(self):
        return self.backbone.item_embedding.weight

    def supports_positions(self):
        return True

    def forward_positions(self, item_seq, lengths, users):
        out = self.backbone.forward_positions(item_seq, lengths)  # (B, L, D)
        return torch.cat([out[:, :1], out[:, :-1]], dim=1)  # position t holds t - 1


def test_a_head_whose_last_position_is_not_forward_fails():
    def build(backbone, *, num_users, num_items, item_vectors, rationale_vectors):
        return _PositionsOffByOne(backbone, num_users=num_users, num_items=num_items)

    cls = functools.partial(implementation("backbones", "gru4rec"), hidden_size=16)
    with pytest.raises(ContractError, match="last real position differs from forward"):
        check_fusion(build, backbone=cls)


def test_tiny_batch_is_right_padded():
    item_seq, lengths = tiny_batch(9, 5, [2, 5, 1])
    assert item_seq.shape == (3, 5) and lengths.tolist() == [2, 5, 1]
    assert (item_seq[0, 2:] == 0).all() and (item_seq[0, :2] > 0).all()
    with pytest.raises(ValueError):
        tiny_batch(9, 5, [6])


# --- fusion heads --------------------------------------------------------------------------
@pytest.mark.parametrize("fusion", ["none", "item-text", "slim", "text-match"])
@pytest.mark.parametrize("backbone", [None, "bert4rec"])
def test_every_registered_fusion_head_passes(fusion, backbone):
    cls = None
    if backbone:
        cls = functools.partial(implementation("backbones", backbone), hidden_size=16)
    report = check_fusion(implementation("fusions", fusion), backbone=cls)
    assert "save/load" in report["checked"]
    # Heads with per-user rationale vectors take new users; the others refuse clearly.
    assert ("add_user" in report["checked"]) == (fusion in ("slim", "text-match"))


def _broken_item_matrix(backbone, *, num_users, num_items, item_vectors, rationale_vectors):
    from slimkit.fusions.none import build_no_fusion

    model = build_no_fusion(backbone, num_users=num_users, num_items=num_items,
                            item_vectors=item_vectors, rationale_vectors=rationale_vectors)
    model.item_matrix = lambda: model.backbone.item_embedding.weight[1:]  # drops row 0
    return model


def test_a_broken_fusion_head_fails():
    with pytest.raises(ContractError, match=r"item_matrix\(\) returned \(23, 8\)"):
        check_fusion(_broken_item_matrix)


class _UserTable(RecommenderBase):
    """Sequence plus a per-user vector (raw or centred); ``add_user`` as a subclass says."""

    def __init__(self, backbone, *, num_users, num_items, rationale_vectors, centre):
        super().__init__(backbone, num_users=num_users, num_items=num_items)
        mean = rationale_vectors.mean(0, keepdim=True) if centre else 0 * rationale_vectors[:1]
        self.register_buffer("users", rationale_vectors - mean, persistent=False)  # (U, E)
        self.register_buffer("mean", mean, persistent=False)  # (1, E)
        self.project = nn.Linear(rationale_vectors.size(1), backbone.hidden_size)

    def forward(self, item_seq, lengths, users):
        return self.backbone(item_seq, lengths) + self.project(self.users[users])  # (B, D)

    def item_matrix(self):
        return self.backbone.item_embedding.weight  # (N + 1, D)


class _AppendsRawVectors(_UserTable):
    def add_user(self, rationale_vector):
        self.users = torch.cat([self.users, rationale_vector.reshape(1, -1)])  # not centred
        return self.users.shape[0] - 1


class _AppendsCentredVectors(_UserTable):
    def add_user(self, rationale_vector):
        self.users = torch.cat([self.users, rationale_vector.reshape(1, -1) - self.mean])
        return self.users.shape[0] - 1


def _user_table(cls, centre=True):
    def build(backbone, *, num_users, num_items, item_vectors, rationale_vectors):
        return cls(backbone, num_users=num_users, num_items=num_items,
                   rationale_vectors=rationale_vectors, centre=centre)

    return build


def test_add_user_must_give_a_known_vector_the_known_users_scores():
    assert "add_user" in check_fusion(_user_table(_AppendsCentredVectors))["checked"]
    # Without centring, appending the raw vector is the same transform: it passes too.
    assert "add_user" in check_fusion(_user_table(_AppendsRawVectors, centre=False))["checked"]
    with pytest.raises(ContractError, match="scores differently from that user"):
        check_fusion(_user_table(_AppendsRawVectors))
    with pytest.raises(ContractError, match="scores depend on the user, but add_user raises"):
        check_fusion(_user_table(_UserTable))


class _UserVectorPerRow(_AppendsCentredVectors):
    """A per-user rationale vector added at every position, indexed as if ``users`` were
    always (B,)."""

    def supports_positions(self):
        return True

    def forward_positions(self, item_seq, lengths, users):
        out = self.backbone.forward_positions(item_seq, lengths)  # (B, L, D)
        return out + self.project(self.users[users]).unsqueeze(1)  # wrong for users (B, L)


class _UserVectorAnyShape(_UserVectorPerRow):
    def forward_positions(self, item_seq, lengths, users):
        vec = self.project(self.users[users])  # (B, D) or (B, L, D)
        out = self.backbone.forward_positions(item_seq, lengths)
        return out + (vec.unsqueeze(1) if users.dim() == 1 else vec)


def test_a_head_must_take_users_per_position_for_leakage_free_rationales():
    cls = functools.partial(implementation("backbones", "gru4rec"), hidden_size=16)
    report = check_fusion(_user_table(_UserVectorAnyShape), backbone=cls)
    assert "forward_positions" in report["checked"]
    with pytest.raises(ContractError, match=r"users of shape \(B, L\)|users \(B, L\)") as err:
        check_fusion(_user_table(_UserVectorPerRow), backbone=cls)
    assert "rationale_cut" in str(err.value)


def test_add_user_of_a_head_without_user_features_is_a_clear_error():
    from slimkit.fusions.none import build_no_fusion

    model = build_no_fusion(_Mean(5, 4), num_users=3, num_items=5)
    with pytest.raises(SlimkitError, match="keeps no per-user rationale vectors") as info:
        model.add_user(torch.ones(4))
    assert "slim or text-match" in info.value.hint


# --- prompts ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", registry("prompts").names())
def test_every_registered_prompt_template_passes(name):
    template = registry("prompts").get(name)
    check_prompt(template, role="student" if "student" in name else None)


def test_prompt_checks_catch_bad_templates():
    check_prompt(slim_cot)
    check_prompt(slim_student, role="student")
    with pytest.raises(ContractError, match=r"lacks the required variable \{history\}"):
        check_prompt(PromptTemplate.from_text("no-history", "Tell me what to buy."))
    with pytest.raises(ContractError, match="never says Step 1, Step 2, Step 3"):
        check_prompt(PromptTemplate.from_text("x", "History:\n{history}\nWhat next?"),
                     role="teacher")
    with pytest.raises(ContractError, match=r"unknown variable \{user_name\}"):
        check_prompt(PromptTemplate.from_text("x", "{user_name}: {history}"), role="student")


# --- encoders -----------------------------------------------------------------------------
class _HashingEncoder:
    """Deterministic bag-of-words hashing encoder: a real, if simple, text encoder."""

    dim = 32

    def encode(self, texts):
        out = np.zeros((len(texts), 32), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in text.lower().split() or [""]:
                out[row, int(hashlib.md5(word.encode()).hexdigest(), 16) % 32] += 1.0
        return out


class _BatchNormalisingEncoder(_HashingEncoder):
    def encode(self, texts):
        out = super().encode(texts)
        return out - out.mean(axis=0, keepdims=True)  # depends on the other texts


class _FlatEncoder(_HashingEncoder):
    def encode(self, texts):
        return np.zeros(len(texts), dtype=np.float32)  # (n,), not (n, E)


class _Float64Encoder(_HashingEncoder):
    def encode(self, texts):
        return super().encode(texts).astype(np.float64)


class _WrongDim(_HashingEncoder):
    dim = 16


class _WantsACache(_HashingEncoder):
    """The old stage-facing signature: slimkit now caches around the encoder."""

    def encode(self, texts, cache, *, progress=False):
        return super().encode(texts)


class _UnhashableIdentity(_HashingEncoder):
    def __init__(self):
        self.identity = {"model": object()}


def test_encoder_checks():
    report = check_encoder(_HashingEncoder())
    assert report["dim"] == 32 and "cached encoding" in report["checked"]
    with pytest.raises(ContractError, match="depends on the other texts"):
        check_encoder(_BatchNormalisingEncoder())
    with pytest.raises(ContractError, match="expected \\(n, E\\)"):
        check_encoder(_FlatEncoder())
    with pytest.raises(ContractError, match="float64"):
        check_encoder(_Float64Encoder())
    with pytest.raises(ContractError, match="dim is 16 but vectors have 32 columns"):
        check_encoder(_WrongDim())
    with pytest.raises(ContractError, match="take one argument: the texts"):
        check_encoder(_WantsACache())
    with pytest.raises(ContractError, match="identity is not JSON-able"):
        check_encoder(_UnhashableIdentity())
    with pytest.raises(ContractError, match="has no encode"):
        check_encoder(lambda texts: np.zeros((len(texts), 3)))


@pytest.mark.slow
def test_the_sentence_transformers_encoder_passes():
    encoder = implementation("encoders", "sentence-transformers")(batch_size=2)
    assert check_encoder(encoder)["dim"] == 384


# --- teachers -----------------------------------------------------------------------------
class _HistoryTeacher:
    """Writes the three steps from the prompt's last line (a real if simple teacher)."""

    def __init__(self, well_formed: bool = True, reverse: bool = False):
        self.well_formed, self.reverse = well_formed, reverse

    def teach(self, jobs, context):
        rows = []
        for job in jobs:
            last = job.messages[-1]["content"].splitlines()[0]
            text = (format_steps({1: f"likes {last}", 2: "Category 1", 3: "Item 3"})
                    if self.well_formed else f"The user likes {last}.")
            rows.append(make_row(job, model="history", text=text, status="done"))
        return rows[::-1] if self.reverse else rows


def test_teacher_checks():
    report = check_teacher(_HistoryTeacher())
    assert report["well_formed"] == 1.0 and report["rows"] == tiny_dataset().num_users
    with pytest.raises(ContractError, match="order of the jobs"):
        check_teacher(_HistoryTeacher(reverse=True))
    with pytest.raises(ContractError, match="only 0% of rationales have three steps"):
        check_teacher(_HistoryTeacher(well_formed=False))
    assert check_teacher(_HistoryTeacher(well_formed=False), min_well_formed=0.0)["rows"] == 6
