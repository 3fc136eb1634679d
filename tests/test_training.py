"""Training invariants: reproducible by seed, and it actually learns."""
import numpy as np
import torch

from fewdims_helpers.fast_dropout import FastDropout
from fewdims_helpers.training import evaluate, train

from conftest import tiny_config


def test_same_seed_gives_same_metrics(synthetic_task):
    first = train(tiny_config(seed=3), synthetic_task, device="cpu", progress=False)
    second = train(tiny_config(seed=3), synthetic_task, device="cpu", progress=False)
    other = train(tiny_config(seed=4), synthetic_task, device="cpu", progress=False)
    assert _without_timing(first) == _without_timing(second)
    assert _without_timing(first) != _without_timing(other)


def _without_timing(result) -> list[dict]:
    return [{key: value for key, value in epoch.items() if not key.endswith("seconds")} for epoch in result.history]


def test_loss_falls_on_a_learnable_task(synthetic_task):
    result = train(tiny_config(epochs=8, lr=3e-3), synthetic_task, device="cpu", progress=False)
    losses = [h["train_loss"] for h in result.history]
    assert losses[-1] < 0.3 * losses[0]
    accuracy = evaluate(result.model, synthetic_task["test"], "accuracy", torch.device("cpu"), "fp32")["accuracy"]
    assert accuracy > 0.9


def test_best_epoch_is_chosen_on_validation(synthetic_task):
    result = train(tiny_config(epochs=3), synthetic_task, device="cpu", progress=False)
    scores = [h["validation"]["accuracy"] for h in result.history]
    assert result.best_epoch == int(np.argmax(scores)) + 1
    kept = evaluate(result.model, synthetic_task["validation"], "accuracy", torch.device("cpu"), "fp32")
    assert kept["accuracy"] == scores[result.best_epoch - 1]


def test_fast_dropout_drops_at_rate_p_and_keeps_the_mean():
    layer = FastDropout(0.1, np.random.default_rng(0)).train()
    out = layer(torch.ones(200_000))
    assert abs((out == 0).float().mean().item() - 0.1) < 0.005
    assert abs(out.mean().item() - 1.0) < 0.01
    assert torch.equal(layer.eval()(torch.ones(10)), torch.ones(10))
    again = FastDropout(0.1, np.random.default_rng(0)).train()(torch.ones(200_000))
    assert torch.equal(out, again)


def test_fast_dropout_attention_still_masks_padding():
    """The fast-dropout attention must get transformers' padding mask: in eval mode the real tokens of a
    padded row match the stock model exactly (a custom attention name gets no mask unless registered)."""
    from fewdims_helpers.fast_dropout import install_fast_dropout
    from fewdims_helpers.models import load_encoder

    stock, fast = load_encoder("tiny").eval(), install_fast_dropout(load_encoder("tiny"), seed=0).eval()
    ids = torch.tensor([[101, 2000, 2001, 102, 0, 0], [101, 2000, 2001, 2002, 2003, 102]])
    mask = torch.tensor([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]])
    with torch.no_grad():
        expected = stock(input_ids=ids, attention_mask=mask).last_hidden_state
        got = fast(input_ids=ids, attention_mask=mask).last_hidden_state
    torch.testing.assert_close(got[0, :4], expected[0, :4], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got[1], expected[1], rtol=1e-5, atol=1e-5)


def test_training_only_the_train_vocabulary_rows_is_exact(synthetic_task, monkeypatch):
    import contextlib

    from fewdims_helpers import training

    config = tiny_config(epochs=2)
    compact = train(config, tokens=synthetic_task, progress=False)
    monkeypatch.setattr(training, "train_vocabulary", lambda *args: contextlib.nullcontext())
    dense = train(config, tokens=synthetic_task, progress=False)
    assert isinstance(compact.model.encoder.embeddings.word_embeddings, torch.nn.Embedding)  # put back
    compact_state, dense_state = compact.model.state_dict(), dense.model.state_dict()
    assert compact_state.keys() == dense_state.keys()
    for name, value in dense_state.items():
        torch.testing.assert_close(compact_state[name], value, rtol=0, atol=0, msg=name)
    words = compact.model.encoder.embeddings.word_embeddings.weight
    pretrained = training.build_model(config).encoder.embeddings.word_embeddings.weight
    used = np.unique(synthetic_task["train"].input_ids)
    moved = (words != pretrained).any(dim=1).nonzero().squeeze(1).numpy()
    assert set(moved) <= set(used) - {0} and len(moved) > 0  # only training-text rows moved, never padding
