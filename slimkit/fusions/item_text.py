"""Fusion ``item-text``: the paper's item feature extension, and the layers SLIM reuses.

Item representation = g_f([item ID embedding; g_l(item text vector)]), with g_l a linear
projection of the text vector to the backbone's dimension D and g_f a linear fusion
layer. By default the fused item vectors also feed the backbone (through its
``encode_embedded``), so the sequence encoder sees the same items it scores.

Scale: text vectors are standardised once (centred over the rows that have text, scaled
so a row has unit norm on average), whatever the encoder, and g_f starts as
"ID part = identity, text part = 0", so at initialisation the model *is* the plain
backbone and the text path grows only as far as it helps.
"""

from __future__ import annotations

import torch
from torch import nn

from slimkit.backbones.protocol import has_positions
from slimkit.errors import SlimkitError
from slimkit.fusions.base import Recommender

FUSION_MODES = ("concat", "add", "gate")


def row_standardization(
    vectors: torch.Tensor, present: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(mean (1, E), scale ())`` of the present rows: ``(row - mean) / scale`` centres them
    and gives them unit mean norm. No present row: mean 0, scale 1 (the identity)."""
    vectors = vectors.detach().float()
    if int(present.sum()) == 0:
        return vectors.new_zeros(1, vectors.size(-1)), vectors.new_ones(())
    rows = vectors[present]  # (P, E)
    mean = rows.mean(dim=0, keepdim=True)  # (1, E)
    scale = (rows - mean).norm(dim=-1).mean().clamp(min=1e-8)  # ()
    return mean, scale


def standardize_rows(vectors: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """Centre the present rows and scale them to unit mean norm; absent rows stay zero.

    ``vectors`` (R, E), ``present`` (R,) bool -> (R, E) float32.
    """
    vectors = vectors.detach().float()
    if int(present.sum()) == 0:
        return torch.zeros_like(vectors)
    mean, scale = row_standardization(vectors, present)
    out = torch.zeros_like(vectors)
    out[present] = (vectors[present] - mean) / scale  # (P, E)
    return out


def present_rows(vectors: torch.Tensor) -> torch.Tensor:
    """(R, E) -> (R,) bool: rows that are not all zero (zero rows mean "no text")."""
    return vectors.detach().abs().sum(dim=-1) > 0


class TextFusion(nn.Module):
    """Fuse a base vector (ID embedding or sequence output) with a projected text vector.

    ``concat``: g_f([base; g_l(text)]); ``add``: base + g_l(text); ``gate``: a learned
    sigmoid gate mixes base and g_l(text) per dimension. Rows without text use a learned
    "missing" vector in place of g_l(text).
    """

    def __init__(self, text_dim: int, hidden_size: int, mode: str = "concat", dropout: float = 0.1):
        super().__init__()
        if mode not in FUSION_MODES:
            raise SlimkitError(f"fusion.mode must be one of {', '.join(FUSION_MODES)}, got {mode!r}")
        self.mode = mode
        self.project = nn.Linear(text_dim, hidden_size)  # g_l: E -> D
        self.missing = nn.Parameter(torch.zeros(hidden_size))
        self.dropout = nn.Dropout(dropout)
        if mode == "concat":
            self.fuse = nn.Linear(2 * hidden_size, hidden_size)  # g_f: 2D -> D
            with torch.no_grad():
                self.fuse.weight.zero_()
                self.fuse.weight[:, :hidden_size].copy_(torch.eye(hidden_size))
                self.fuse.bias.zero_()
        elif mode == "gate":
            self.gate = nn.Linear(2 * hidden_size, hidden_size)
            with torch.no_grad():
                self.gate.weight.mul_(0.1)
                self.gate.bias.fill_(2.0)  # start mostly on the base path (sigmoid(2) = 0.88)
        if mode != "concat":
            with torch.no_grad():
                self.project.weight.mul_(0.1)
                self.project.bias.zero_()

    def projected(self, text: torch.Tensor, present: torch.Tensor | None = None) -> torch.Tensor:
        """g_l(text) with the missing vector where ``present`` is False: (..., E) -> (..., D)."""
        proj = self.project(text)  # (..., D)
        if present is not None:
            proj = torch.where(present.unsqueeze(-1), proj, self.missing.expand_as(proj))
        return self.dropout(proj)

    def forward(
        self, base: torch.Tensor, text: torch.Tensor, present: torch.Tensor | None = None
    ) -> torch.Tensor:
        """(..., D) base, (..., E) text, (...,) bool present -> (..., D)."""
        return self.fuse_projected(base, self.projected(text, present))

    def fuse_projected(self, base: torch.Tensor, proj: torch.Tensor) -> torch.Tensor:
        """(..., D) base, (..., D) already projected text -> (..., D)."""
        if self.mode == "add":
            return base + proj
        both = torch.cat([base, proj], dim=-1)  # (..., 2D)
        if self.mode == "concat":
            return self.fuse(both)  # (..., D)
        gate = torch.sigmoid(self.gate(both))  # (..., D)
        return gate * base + (1 - gate) * proj


def check_side_info(
    name: str, vectors: torch.Tensor | None, rows: int, what: str, stage_hint: str
) -> torch.Tensor:
    """A float (rows, E) tensor, or a clear error naming the stage to re-run."""
    if vectors is None:
        raise SlimkitError(
            f"The fusion head needs {name} but none were given.",
            hint=stage_hint,
        )
    vectors = torch.as_tensor(vectors).float()
    if vectors.dim() != 2 or vectors.size(0) != rows:
        raise SlimkitError(
            f"{name} have shape {tuple(vectors.shape)}, but the dataset has {rows} {what}: "
            "the vectors were made for another dataset.",
            hint=stage_hint,
        )
    return vectors


ENCODE_HINT = "Re-run the encode stage: `slimkit cache clear encode`, then `slimkit run`."


def encode_sequence(
    backbone: nn.Module,
    item_seq: torch.Tensor,
    lengths: torch.Tensor,
    matrix: torch.Tensor | None,
    per_position: bool,
) -> torch.Tensor:
    """The backbone over ``item_seq`` (B, L): over its own ID embeddings when ``matrix`` is
    None, else over ``matrix[item_seq]`` (fused or text item vectors, (N + 1, D) matrix);
    -> (B, D), or (B, L, D) per position when ``per_position``."""
    if matrix is None:
        if per_position:
            return backbone.forward_positions(item_seq, lengths)  # (B, L, D)
        return backbone(item_seq, lengths)  # (B, D)
    emb = matrix[item_seq]  # (B, L, D)
    if per_position:
        return backbone.encode_embedded_positions(emb, item_seq, lengths)  # (B, L, D)
    return backbone.encode_embedded(emb, item_seq, lengths)  # (B, D)


def require_encode_embedded(backbone: nn.Module, option: str) -> None:
    if not callable(getattr(backbone, "encode_embedded", None)):
        raise SlimkitError(
            f"The backbone {type(backbone).__name__} has no encode_embedded(emb, item_seq, "
            f"lengths), which {option} needs.",
            hint=f"Set {option}=false, or implement encode_embedded in the backbone "
            "(see slimkit/backbones/__init__.py).",
        )


class ItemSide(nn.Module):
    """Item representations: ID embeddings, fused with item text when given."""

    def __init__(
        self,
        backbone: nn.Module,
        item_vectors: torch.Tensor | None,
        mode: str,
        dropout: float,
        standardize: bool,
    ):
        super().__init__()
        # The ID embedding stays the backbone's (not registered twice: safetensors refuses
        # shared tensors); ``matrix`` receives its weight.
        hidden = backbone.item_embedding.embedding_dim
        if item_vectors is None:
            self.fusion = None
            return
        present = present_rows(item_vectors)
        present[0] = False
        text = standardize_rows(item_vectors, present) if standardize else item_vectors.float()
        self.register_buffer("text", text, persistent=False)  # (N+1, E)
        self.register_buffer("present", present, persistent=False)  # (N+1,)
        self.fusion = TextFusion(text.size(1), hidden, mode, dropout)

    def matrix(self, ids: torch.Tensor) -> torch.Tensor:
        """(N + 1, D) ID embeddings -> (N + 1, D) item representations, row 0 zeros."""
        if self.fusion is None:
            return ids
        fused = self.fusion(ids, self.text, self.present)  # (N+1, D)
        keep = torch.ones_like(fused[:, :1])
        keep[0] = 0
        return fused * keep  # padding row stays zero


class ItemTextRecommender(Recommender):
    """Backbone whose items are ID embeddings fused with projected item text vectors."""

    def __init__(self, backbone, *, num_users, num_items, item_vectors, mode, dropout,
                 standardize, fuse_inputs):
        super().__init__(backbone, num_users=num_users, num_items=num_items)
        self.fuse_inputs = fuse_inputs
        if fuse_inputs:
            require_encode_embedded(backbone, "fusion.fuse_inputs")
        self.items = ItemSide(backbone, item_vectors, mode, dropout, standardize)

    def sequence(self, item_seq, lengths, matrix=None, per_position=False):
        """(B, L), (B,) -> (B, D) sequence representations over (fused) item vectors;
        (B, L, D) per position when ``per_position``."""
        if self.fuse_inputs:
            matrix = self.item_matrix() if matrix is None else matrix  # (N+1, D)
        else:
            matrix = None
        return encode_sequence(self.backbone, item_seq, lengths, matrix, per_position)

    def forward(self, item_seq, lengths, users):
        return self.sequence(item_seq, lengths)

    def supports_positions(self) -> bool:
        return has_positions(self.backbone, embedded=self.fuse_inputs)

    def forward_positions(self, item_seq, lengths, users):
        if not self.supports_positions():
            return super().forward_positions(item_seq, lengths, users)
        return self.sequence(item_seq, lengths, per_position=True)  # (B, L, D)

    def score_positions(self, item_seq, lengths, users, where):
        if not self.supports_positions():
            return super().score_positions(item_seq, lengths, users, where)
        matrix = self.item_matrix()  # (N+1, D), once for inputs and scores
        return self.sequence(item_seq, lengths, matrix, per_position=True)[where] @ matrix.T

    def item_matrix(self):
        return self.items.matrix(self.backbone.item_embedding.weight)

    def score_candidates(self, item_seq, lengths, users, candidates, where=None):
        matrix = self.item_matrix()  # (N+1, D), once for inputs and scores
        if where is None:
            user = self.sequence(item_seq, lengths, matrix)  # (B, D)
        else:
            user = self.sequence(item_seq, lengths, matrix, per_position=True)[where]  # (P, D)
        return user @ matrix[candidates].T  # (R, C)

    def score_all(self, item_seq, lengths, users):
        matrix = self.item_matrix()  # (N+1, D), computed once for inputs and scores
        return self.sequence(item_seq, lengths, matrix) @ matrix.T  # (B, N+1)


def build_item_text(
    backbone: nn.Module,
    *,
    num_users: int,
    num_items: int,
    item_vectors: torch.Tensor | None,
    rationale_vectors: torch.Tensor | None = None,
    dropout: float = 0.1,
    mode: str = "concat",
    standardize: bool = True,
    fuse_inputs: bool = True,
) -> ItemTextRecommender:
    """Fusion kind ``item-text`` (the paper's item feature extension)."""
    item_vectors = check_side_info(
        "item text vectors", item_vectors, num_items + 1, "items (+ padding)", ENCODE_HINT
    )
    return ItemTextRecommender(
        backbone,
        num_users=num_users,
        num_items=num_items,
        item_vectors=item_vectors,
        mode=mode,
        dropout=dropout,
        standardize=standardize,
        fuse_inputs=fuse_inputs,
    )
