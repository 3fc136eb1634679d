"""Training invariants: reproducible by seed, and it actually learns."""
import numpy as np
import torch

from fewdims_helpers.training.fast_dropout import FastDropout
from fewdims_helpers.training.loop import evaluate, train

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
    from fewdims_helpers.training.fast_dropout import install_fast_dropout
    from fewdims_helpers.model.pretrained import load_encoder

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

    from fewdims_helpers.training import loop as training

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
    moved = (words.cpu() != pretrained).any(dim=1).nonzero().squeeze(1).numpy()
    assert set(moved) <= set(used) - {0} and len(moved) > 0  # only training-text rows moved, never padding


def _recipe(config, **fields):
    import dataclasses

    return dataclasses.replace(config, train=dataclasses.replace(config.train, **fields))


def test_validation_every_k_steps_records_a_finer_curve_and_keeps_its_best(synthetic_task):
    import dataclasses

    config = _recipe(tiny_config(epochs=3), eval_every=2)
    steps_per_epoch = -(-len(synthetic_task["train"]) // config.train.batch_size)
    result = train(config, synthetic_task, device="cpu", progress=False)
    steps = [h["step"] for h in result.history]
    assert steps == sorted(set(range(2, 3 * steps_per_epoch + 1, 2)) | {3 * steps_per_epoch})
    assert len(steps) > 3  # finer than once per epoch
    scores = [h["validation"]["accuracy"] for h in result.history]
    assert result.best_index == int(np.argmax(scores)) and result.best_step == steps[result.best_index]
    kept = evaluate(result.model, synthetic_task["validation"], "accuracy", torch.device("cpu"), "fp32")
    assert kept["accuracy"] == scores[result.best_index]
    assert result.history[result.best_index]["epoch"] == result.best_epoch


def test_patience_stops_on_a_validation_plateau(synthetic_task):
    config = _recipe(tiny_config(epochs=20, lr=1e-5), eval_every=1, patience=2)  # a rate too small to improve
    result = train(config, synthetic_task, device="cpu", progress=False)
    scores = [h["validation"]["accuracy"] for h in result.history]
    cap = 20 * -(-len(synthetic_task["train"]) // config.train.batch_size)
    assert result.stopped_early and result.history[-1]["step"] < cap
    assert len(scores) - 1 - result.best_index == 2  # two validations without a new best, then stop


def test_the_head_trains_at_its_own_learning_rate():
    from fewdims_helpers.training.loop import build_model, parameter_groups

    model = build_model(tiny_config())
    groups = parameter_groups(model, 1e-4, 3e-3)
    head = {id(p) for p in model.head.parameters()}
    by_rate = {group["lr"]: {id(p) for p in group["params"]} for group in groups}
    assert by_rate[3e-3] == head and not (by_rate[1e-4] & head)
    assert len(parameter_groups(model, 1e-4)) == 1  # no head rate: one group


def test_a_trajectory_run_refuses_an_early_stop():
    import dataclasses

    import pytest

    from fewdims_helpers.config import ConfigError

    with pytest.raises(ConfigError, match="patience 0"):
        dataclasses.replace(_recipe(tiny_config(), patience=3), record_trajectory=4)
