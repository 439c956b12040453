"""SR-GNN (Wu et al., AAAI 2019): a session graph per sequence, a gated GNN over its
nodes, soft attention over the sequence plus the last item.

Configured like RecBole 1.2.1's SRGNN (uniform init in +-1/sqrt(D), one propagation step),
but the session graphs of a whole batch are built with tensor operations (sort, scatter)
instead of a Python loop per sequence, which is where RecBole spends most of its time.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from slimkit.backbones.base import ItemSequenceBackbone, gather_last


def session_graphs(item_seq: torch.Tensor, lengths: torch.Tensor):
    """Batch session graphs from right-padded sequences.

    Returns ``alias`` (B, L): node index of each position; ``first`` (B, L): for each node
    slot, a position holding that node's item (used to fill node vectors); ``adj_in`` and
    ``adj_out`` (B, L, L): ``adj_in[b, v, u] = 1/indeg(v)`` for an edge u -> v and
    ``adj_out[b, v, w] = 1/outdeg(v)`` for an edge v -> w (edges between consecutive real
    items, counted once). Node slots beyond a row's number of distinct items are unused.
    """
    b, length = item_seq.shape
    device = item_seq.device
    positions = torch.arange(length, device=device)  # (L,)
    real = positions.unsqueeze(0) < lengths.unsqueeze(1)  # (B, L) bool
    # Padding gets a key above every item so real items take the first node slots.
    keys = torch.where(real, item_seq, torch.full_like(item_seq, torch.iinfo(torch.long).max))
    sorted_keys, order = keys.sort(dim=1, stable=True)  # (B, L), (B, L)
    is_new = torch.ones_like(sorted_keys, dtype=torch.bool)  # (B, L)
    is_new[:, 1:] = sorted_keys[:, 1:] != sorted_keys[:, :-1]
    node_of_sorted = is_new.long().cumsum(1) - 1  # (B, L) node slot of each sorted position
    alias = torch.empty_like(node_of_sorted).scatter_(1, order, node_of_sorted)  # (B, L)
    # first[b, n]: a position holding node n's item (all such positions hold the same item,
    # so whichever write wins is right). Unused node slots point at position 0.
    first = torch.zeros_like(alias).scatter_(1, node_of_sorted, order)  # (B, L)

    # Edges alias[t] -> alias[t+1] for consecutive real positions.
    adj = torch.zeros(b, length, length, device=device)  # (B, L, L)
    if length > 1:
        edge = real[:, 1:]  # (B, L-1) both ends real
        rows = torch.arange(b, device=device).unsqueeze(1).expand(-1, length - 1)[edge]  # (E,)
        adj[rows, alias[:, :-1][edge], alias[:, 1:][edge]] = 1.0
    in_degree = adj.sum(1).clamp(min=1)  # (B, L) edges into each node
    out_degree = adj.sum(2).clamp(min=1)  # (B, L) edges out of each node
    adj_in = (adj / in_degree.unsqueeze(1)).transpose(1, 2)  # (B, L, L) [b, v, u]
    adj_out = adj / out_degree.unsqueeze(2)  # (B, L, L) [b, v, w]
    return alias, first, adj_in, adj_out


class GatedGraphCell(nn.Module):
    """One gated GNN propagation step (GRU-style update from in- and out-messages)."""

    def __init__(self, hidden_size: int):
        super().__init__()
        self.edge_in = nn.Linear(hidden_size, hidden_size)
        self.edge_out = nn.Linear(hidden_size, hidden_size)
        self.bias_in = nn.Parameter(torch.zeros(hidden_size))
        self.bias_out = nn.Parameter(torch.zeros(hidden_size))
        self.w_ih = nn.Parameter(torch.empty(3 * hidden_size, 2 * hidden_size))
        self.w_hh = nn.Parameter(torch.empty(3 * hidden_size, hidden_size))
        self.b_ih = nn.Parameter(torch.zeros(3 * hidden_size))
        self.b_hh = nn.Parameter(torch.zeros(3 * hidden_size))

    def forward(self, adj_in: torch.Tensor, adj_out: torch.Tensor, hidden: torch.Tensor):
        msg_in = adj_in @ self.edge_in(hidden) + self.bias_in  # (B, N, D)
        msg_out = adj_out @ self.edge_out(hidden) + self.bias_out  # (B, N, D)
        gi = F.linear(torch.cat([msg_in, msg_out], dim=2), self.w_ih, self.b_ih)  # (B, N, 3D)
        gh = F.linear(hidden, self.w_hh, self.b_hh)  # (B, N, 3D)
        i_r, i_z, i_n = gi.chunk(3, dim=2)
        h_r, h_z, h_n = gh.chunk(3, dim=2)
        reset = torch.sigmoid(i_r + h_r)  # (B, N, D)
        update = torch.sigmoid(i_z + h_z)  # (B, N, D)
        candidate = torch.tanh(i_n + reset * h_n)  # (B, N, D)
        return candidate + update * (hidden - candidate)  # (B, N, D)


class SRGNN(ItemSequenceBackbone):
    """Gated GNN over the session graph; soft attention + last item give the user vector."""

    def __init__(self, num_items: int, max_seq_len: int, hidden_size: int = 64, steps: int = 1):
        super().__init__(num_items, max_seq_len, hidden_size)
        self.steps = steps
        self.cell = GatedGraphCell(hidden_size)
        self.linear_one = nn.Linear(hidden_size, hidden_size)
        self.linear_two = nn.Linear(hidden_size, hidden_size)
        self.linear_three = nn.Linear(hidden_size, 1, bias=False)
        self.linear_transform = nn.Linear(2 * hidden_size, hidden_size)
        bound = 1.0 / math.sqrt(hidden_size)
        for weight in self.parameters():
            nn.init.uniform_(weight, -bound, bound)
        self._zero_padding_row()

    def encode_embedded(
        self, emb: torch.Tensor, item_seq: torch.Tensor, lengths: torch.Tensor
    ) -> torch.Tensor:
        d = emb.size(2)
        alias, first, adj_in, adj_out = session_graphs(item_seq, lengths)
        nodes = emb.gather(1, first.unsqueeze(2).expand(-1, -1, d))  # (B, N=L, D) node vectors
        for _ in range(self.steps):
            nodes = self.cell(adj_in, adj_out, nodes)  # (B, N, D)
        seq_hidden = nodes.gather(1, alias.unsqueeze(2).expand(-1, -1, d))  # (B, L, D)
        last = gather_last(seq_hidden, lengths)  # (B, D)
        real = torch.arange(emb.size(1), device=emb.device).unsqueeze(0) < lengths.unsqueeze(1)
        alpha = self.linear_three(
            torch.sigmoid(self.linear_one(last).unsqueeze(1) + self.linear_two(seq_hidden))
        )  # (B, L, 1)
        pooled = (alpha * seq_hidden * real.unsqueeze(2)).sum(1)  # (B, D)
        return self.linear_transform(torch.cat([pooled, last], dim=1))  # (B, D)
