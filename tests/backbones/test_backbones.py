"""Every registered backbone honours the backbone contract (tiny sizes, CPU)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from slimkit.components import implementation, params_model  # noqa: E402
from slimkit.errors import ConfigError  # noqa: E402
from slimkit.registry import registry  # noqa: E402
from slimkit.spec import load_spec  # noqa: E402

NUM_ITEMS, MAX_LEN = 30, 8
BACKBONES = registry("backbones").names()


def tiny_params(name: str) -> dict:
    """The component's defaults with small sizes where it has them."""
    model = params_model("backbones", name)
    small = {"hidden_size": 16, "inner_size": 32, "gru_size": 24, "num_layers": 1}
    params = model(kind=name).model_dump(exclude={"kind"})
    params.update({k: v for k, v in small.items() if k in params})
    return params


def build(name: str):
    torch.manual_seed(0)
    return implementation("backbones", name)(
        num_items=NUM_ITEMS, max_seq_len=MAX_LEN, **tiny_params(name)
    )


def batch():
    seq = torch.tensor(
        [[3, 5, 3, 7, 0, 0], [1, 2, 3, 4, 5, 6], [9, 0, 0, 0, 0, 0]], dtype=torch.long
    )
    return seq, torch.tensor([4, 6, 1])


def test_builtins_are_registered():
    assert {"sasrec", "gru4rec", "srgnn"} <= set(BACKBONES)


@pytest.mark.parametrize("name", BACKBONES)
def test_forward_backward_save_load(name, tmp_path):
    from safetensors.torch import load_model, save_model

    model = build(name)
    d = model.hidden_size
    assert model.item_embedding.num_embeddings == NUM_ITEMS + 1
    assert model.item_embedding.padding_idx == 0
    assert torch.all(model.item_embedding.weight[0] == 0)
    seq, lengths = batch()
    out = model(seq, lengths)
    assert out.shape == (3, d)
    assert torch.isfinite(out).all()
    loss = (out @ model.item_embedding.weight.T).logsumexp(1).mean()
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)

    model.eval()
    with torch.no_grad():
        expected = model(seq, lengths)
    save_model(model, str(tmp_path / "m.safetensors"))
    fresh = build(name)
    torch.manual_seed(123)  # a different init must be overwritten by the load
    load_model(fresh, str(tmp_path / "m.safetensors"))
    fresh.eval()
    with torch.no_grad():
        assert torch.allclose(fresh(seq, lengths), expected, atol=1e-6)


@pytest.mark.parametrize("name", BACKBONES)
def test_encode_embedded_matches_forward(name):
    model = build(name).eval()
    seq, lengths = batch()
    with torch.no_grad():
        direct = model(seq, lengths)
        embedded = model.encode_embedded(model.item_embedding(seq), seq, lengths)
    assert torch.allclose(direct, embedded, atol=1e-6)


@pytest.mark.parametrize("name", BACKBONES)
def test_right_padding_does_not_change_the_output(name):
    """A row's representation depends on its real items only, not on the batch width."""
    model = build(name).eval()
    seq, lengths = batch()
    wider = torch.cat([seq, torch.zeros(3, 2, dtype=torch.long)], dim=1)  # (3, 8)
    with torch.no_grad():
        a = model(seq, lengths)
        b = model(wider, lengths)
        single = model(seq[:1, :4], lengths[:1])
    assert torch.allclose(a, b, atol=1e-5)
    assert torch.allclose(a[:1], single, atol=1e-5)


@pytest.mark.parametrize("name", ["sasrec", "gru4rec", "srgnn"])
def test_output_depends_on_the_items(name):
    model = build(name).eval()
    with torch.no_grad():
        a = model(torch.tensor([[1, 2, 3]]), torch.tensor([3]))
        b = model(torch.tensor([[1, 2, 4]]), torch.tensor([3]))
    assert not torch.allclose(a, b)


def test_srgnn_session_graph_by_hand():
    from slimkit.backbones.srgnn import session_graphs

    seq = torch.tensor([[5, 3, 5, 7, 0, 0]])
    alias, first, adj_in, adj_out = session_graphs(seq, torch.tensor([4]))
    # Nodes sorted by item: 3 -> 0, 5 -> 1, 7 -> 2; padding last.
    assert alias[0, :4].tolist() == [1, 0, 1, 2]
    assert [int(seq[0, first[0, n]]) for n in range(3)] == [3, 5, 7]
    # Edges 5->3, 3->5, 5->7: node 5 has out-degree 2, each in-degree is 1.
    expected_out = torch.zeros(6, 6)
    expected_out[1, 0] = expected_out[1, 2] = 0.5
    expected_out[0, 1] = 1.0
    expected_in = torch.zeros(6, 6)
    expected_in[0, 1] = expected_in[1, 0] = expected_in[2, 1] = 1.0
    assert torch.equal(adj_out[0], expected_out)
    assert torch.equal(adj_in[0], expected_in)


def test_repeated_edge_counts_once():
    from slimkit.backbones.srgnn import session_graphs

    _, _, adj_in, adj_out = session_graphs(torch.tensor([[1, 2, 1, 2]]), torch.tensor([4]))
    # 1->2 twice, 2->1 once: each node has one distinct in- and out-neighbour.
    assert adj_out[0, 0, 1] == 1.0 and adj_out[0, 1, 0] == 1.0
    assert adj_in[0, 1, 0] == 1.0 and adj_in[0, 0, 1] == 1.0


def test_sasrec_rejects_heads_that_do_not_divide_hidden():
    with pytest.raises(ConfigError) as info:
        load_spec(None, ["backbone.kind=sasrec", "backbone.num_heads=3", "fusion.kind=none"])
    assert "num_heads" in str(info.value) and "backbone" in str(info.value)


def test_sasrec_rejects_sequences_longer_than_max_len():
    model = build("sasrec")
    with pytest.raises(ValueError, match="max_seq_len"):
        model(torch.ones(1, MAX_LEN + 1, dtype=torch.long), torch.tensor([MAX_LEN + 1]))
