"""Invariants of the classifier: dimension masks, token selection, layer truncation, freezing."""
import pytest
import torch

from fewdims_helpers.config import ConfigError, ModelConfig
from fewdims_helpers.model.head import select_tokens
from fewdims_helpers.model.pretrained import load_encoder
from fewdims_helpers.training.loop import build_model, train

from conftest import tiny_config


def test_masked_head_ignores_unselected_dimensions():
    model = build_model(tiny_config(selected_dims=(3, 17))).eval()
    features = torch.randn(5, 32)
    changed = features.clone()
    unselected = [d for d in range(32) if d not in (3, 17)]
    changed[:, unselected] = torch.randn(5, len(unselected)) * 100
    assert torch.allclose(model.classify(features), model.classify(changed))
    changed[:, 3] += 1.0
    assert not torch.allclose(model.classify(features), model.classify(changed))


def test_masked_head_gives_no_gradient_to_unselected_weights():
    model = build_model(tiny_config(selected_dims=(0, 1))).train()
    model.classify(torch.randn(4, 32)).sum().backward()
    grad = model.head[0].weight.grad
    assert grad[:, 2:].abs().sum() == 0 and grad[:, :2].abs().sum() > 0


def test_max_norm_token_picks_largest_real_token_and_never_padding():
    hidden = torch.randn(3, 6, 8)
    mask = torch.tensor([[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 0], [1, 1, 1, 1, 1, 1]])
    hidden[:, 3:] *= 1000  # padding positions of row 0 and 1 have the largest norms
    hidden[0, 1] *= 50
    chosen = select_tokens(hidden, mask, "max_norm_token")
    for row in range(3):
        real = mask[row].bool()
        norms = hidden[row].norm(dim=-1).masked_fill(~real, -1)
        assert torch.equal(chosen[row], hidden[row, norms.argmax()])
    assert torch.equal(chosen[0], hidden[0, 1])


def test_max_norm_token_can_exclude_special_tokens():
    hidden = torch.randn(1, 5, 8)
    hidden[0, 0] *= 100  # [CLS] has the largest norm
    special = torch.tensor([[1, 0, 0, 0, 1]])
    chosen = select_tokens(hidden, torch.ones(1, 5, dtype=torch.long), "max_norm_token", special)
    norms = hidden[0, 1:4].norm(dim=-1)
    assert torch.equal(chosen[0], hidden[0, 1 + int(norms.argmax())])


def test_max_and_mean_ignore_padding():
    hidden = torch.randn(2, 4, 8)
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]])
    hidden[0, 2:] = 1e6
    assert torch.allclose(select_tokens(hidden, mask, "mean")[0], hidden[0, :2].mean(0))
    assert torch.equal(select_tokens(hidden, mask, "max")[0], hidden[0, :2].max(0).values)


@pytest.mark.parametrize("layer", [1, 2])
def test_truncated_encoder_equals_full_models_hidden_state(layer):
    full = load_encoder("tiny").eval()
    ids = torch.randint(1000, 2000, (3, 7))
    mask = torch.ones_like(ids)
    expected = full(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states[layer][:, 0]
    model = build_model(tiny_config(layer=layer)).eval()
    assert len(model.encoder.encoder.layer) == layer
    assert torch.allclose(model.features(ids, mask), expected, atol=1e-6)


def test_frozen_parameters_do_not_move(synthetic_task):
    config = tiny_config(frozen_layers=1)
    model = build_model(config)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    train(config, synthetic_task, device="cpu", progress=False, model=model)
    moved = {name for name, p in model.named_parameters() if not torch.equal(p, before[name])}
    assert not any(name.startswith(("encoder.embeddings", "encoder.encoder.layer.0.")) for name in moved)
    assert any(name.startswith("encoder.encoder.layer.1.") for name in moved)
    assert any(name.startswith("head.") for name in moved)


def test_freeze_pretrained_trains_only_the_head(synthetic_task):
    config = tiny_config(freeze_pretrained=True, head_layers=2)
    model = build_model(config)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    train(config, synthetic_task, device="cpu", progress=False, model=model)
    moved = {name for name, p in model.named_parameters() if not torch.equal(p, before[name])}
    assert moved and all(name.startswith("head.") for name in moved)


def test_bad_model_inputs_fail_with_a_clear_message():
    with pytest.raises(ConfigError, match="duplicates"):
        ModelConfig(selected_dims=(1, 1))
    with pytest.raises(ConfigError, match="out of range for hidden size 32"):
        build_model(tiny_config(selected_dims=(0, 40)))
    with pytest.raises(ConfigError, match=r"layer 3 is out of range: the model has 2 layers \(1..2\)"):
        build_model(tiny_config(layer=3))
    with pytest.raises(ConfigError, match="unknown token_selection"):
        ModelConfig(token_selection="first")
