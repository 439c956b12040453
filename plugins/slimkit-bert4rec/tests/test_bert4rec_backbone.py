"""slimkit-bert4rec's own tests: slimkit's backbone contract, its params, and learning."""

from __future__ import annotations

import pytest
import torch
from slimkit_bert4rec import BERT4RecParams, __version__
from slimkit_bert4rec.model import BERT4Rec

from slimkit.components import params_model
from slimkit.errors import ConfigError
from slimkit.plugins import check_backbone, implementation, registry, tiny_batch, validate_spec


@pytest.mark.parametrize(
    "params",
    [
        dict(hidden_size=16, num_heads=2, inner_size=32),
        dict(hidden_size=8, num_heads=4, num_layers=1, inner_size=16, max_seq_len=3),
        dict(hidden_size=12, num_heads=3, num_layers=3, dropout=0.0, attention_dropout=0.0),
    ],
)
def test_bert4rec_meets_the_backbone_contract(params):
    report = check_backbone(BERT4Rec, **params)
    assert "encode_embedded" in report["checked"] and "padding" in report["checked"]


def test_bert4rec_is_found_through_its_entry_point():
    entry = registry("backbones").entry("bert4rec")
    assert entry.distribution == "slimkit-bert4rec"
    assert entry.version == __version__
    assert params_model("backbones", "bert4rec") is BERT4RecParams
    assert implementation("backbones", "bert4rec") is BERT4Rec


def test_bert4rec_params_validate_in_a_spec():
    spec = validate_spec({"backbone": {"kind": "bert4rec", "hidden_size": 32, "num_heads": 4}})
    assert spec.backbone.hidden_size == 32
    with pytest.raises(ConfigError, match=r"num_heads \(4\) must divide hidden_size \(30\)"):
        validate_spec({"backbone": {"kind": "bert4rec", "hidden_size": 30, "num_heads": 4}})
    with pytest.raises(ConfigError, match="num_layer: unknown key. Did you mean 'num_layers'"):
        validate_spec({"backbone": {"kind": "bert4rec", "num_layer": 1}})


def test_representation_is_read_at_the_mask_and_sees_the_whole_history():
    torch.manual_seed(0)
    model = BERT4Rec(30, 6, hidden_size=16, num_heads=2, inner_size=32).eval()
    item_seq, lengths = tiny_batch(30, 6, [4], seed=1)
    with torch.no_grad():
        base = model(item_seq, lengths)
        for position in range(4):  # every item, oldest included, changes the output
            changed = item_seq.clone()
            changed[0, position] = changed[0, position] % 30 + 1
            assert not torch.allclose(base, model(changed, lengths))
        # The [MASK] vector itself is what is read out: changing it changes the output.
        model.mask_embedding.add_(torch.randn(16))
        assert not torch.allclose(base, model(item_seq, lengths))


def test_bert4rec_learns_a_next_item_rule():
    """Next item = last item + 1 (mod N): a few hundred steps reach high accuracy."""
    torch.manual_seed(0)
    num_items, max_len = 20, 5
    model = BERT4Rec(num_items, max_len, hidden_size=32, num_heads=2, inner_size=64,
                     dropout=0.0, attention_dropout=0.0)
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)

    def batch(size: int, generator: torch.Generator):
        lengths = torch.randint(1, max_len + 1, (size,), generator=generator)
        start = torch.randint(0, num_items, (size,), generator=generator)
        steps = torch.arange(max_len)
        item_seq = (start[:, None] + steps[None, :]) % num_items + 1  # consecutive items
        item_seq = item_seq * (steps[None, :] < lengths[:, None])  # right padding
        target = (start + lengths) % num_items + 1
        return item_seq, lengths, target

    generator = torch.Generator().manual_seed(1)
    for _ in range(300):
        item_seq, lengths, target = batch(64, generator)
        logits = model(item_seq, lengths) @ model.item_embedding.weight.T  # (B, N + 1)
        loss = torch.nn.functional.cross_entropy(logits, target)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    model.eval()
    with torch.no_grad():
        item_seq, lengths, target = batch(256, torch.Generator().manual_seed(2))
        predicted = (model(item_seq, lengths) @ model.item_embedding.weight.T).argmax(-1)
    assert (predicted == target).float().mean() > 0.9
