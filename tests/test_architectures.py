"""Every supported family, as a tiny random model folder built offline (``tiny_models.py``), runs the
package's code paths: truncation at layer k equals the full model's hidden state k, a training step,
every token selection, frozen encoders with and without cached features, freezing of the first
layers, the weight change of study 04, the subspace of study 07 and the trainable vocabulary."""
from __future__ import annotations

import dataclasses

import datasets
import numpy as np
import pytest
import torch

from fewdims_helpers.model import architectures
from fewdims_helpers.config import ConfigError, DataConfig, ModelConfig, RunConfig, SubspaceConfig, TrainConfig
from fewdims_helpers.data.tokenized import tokenize_split
from fewdims_helpers.model.head import select_tokens
from fewdims_helpers.model.pretrained import ModelLoadError, load_encoder, load_tokenizer, pretrained_encoder
from fewdims_helpers.model.subspace import SubspaceLayer, materialize, reparameterize
from fewdims_helpers.model.tiny_models import CORPUS, KINDS, build_tiny_model
from fewdims_helpers.training.loop import build_model, predict, relative_weight_change, train

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("tiny-models")
    return {kind: str(build_tiny_model(kind, root / kind)) for kind in KINDS}


def run_config(folder: str, **model_fields) -> RunConfig:
    return RunConfig(data=DataConfig("rt-polarity", max_seq_length=16), model=ModelConfig(model=folder, **model_fields),
                     train=TrainConfig(batch_size=8, epochs=1, learning_rate=1e-3, seed=0, precision="fp32"))


def tokens(folder: str, pairs: bool = False) -> dict:
    texts = list(CORPUS) + [" ".join(reversed(s.split())) for s in CORPUS]
    rows = {"sentence": texts, "label": [i % 2 for i in range(len(texts))], "idx": list(range(len(texts)))}
    fields = ("sentence",)
    if pairs:
        rows["second"], fields = texts[::-1], ("sentence", "second")
    split = tokenize_split(datasets.Dataset.from_dict(rows), fields, load_tokenizer(folder), 16)
    return {"train": split, "validation": split, "test": split}


def head_variants(folder: str) -> list[dict]:
    variants = [{}, {"token_selection": "last"}, {"token_selection": "mean"}, {"token_selection": "max"},
                {"token_selection": "max_norm_token", "max_norm_include_special": False}, {"layer": 1},
                {"selected_dims": (0, 3, 7), "head_layers": 2}]
    if getattr(pretrained_encoder(folder), "pooler", None) is not None:
        variants.append({"token_selection": "pooler"})
    return variants


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("layer", [1, 2])
def test_truncated_model_equals_the_full_models_hidden_state(folders, kind, layer):
    folder = folders[kind]
    batch = load_tokenizer(folder)(["the film is good", "a bad plot and weak acting"], padding=True,
                                   return_tensors="pt", return_token_type_ids=True)
    full = load_encoder(folder).eval()
    expected = full(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                    output_hidden_states=True).hidden_states[layer]
    model = build_model(run_config(folder, layer=layer, token_selection="mean")).eval()
    assert architectures.num_layers(model) == layer
    got = architectures.last_hidden_state(model.encoder, batch["input_ids"], batch["attention_mask"],
                                          batch["token_type_ids"])
    real = batch["attention_mask"].bool()
    torch.testing.assert_close(got[real], expected[real], rtol=0, atol=1e-6)


@pytest.mark.parametrize("kind", KINDS)
def test_a_training_step_runs_for_every_head_variant(folders, kind):
    folder, data = folders[kind], tokens(folders[kind])
    for fields in head_variants(folder):
        config = run_config(folder, **fields)
        result = train(config, data, device="cpu", progress=False)
        assert np.isfinite(result.history[0]["train_loss"]), fields
        logits, features = predict(result.model, data["test"], CPU, "fp32", return_features=True)
        assert features.shape == (len(data["test"]), architectures.hidden_size(result.model)), fields
        assert np.isfinite(logits).all(), fields


@pytest.mark.parametrize("kind", KINDS)
def test_cached_features_train_a_frozen_model_as_running_it_does(folders, kind):
    folder, data = folders[kind], tokens(folders[kind])
    config = run_config(folder, freeze_pretrained=True, head_layers=2)
    cached = {split: torch.from_numpy(predict(build_model(config), part, CPU, "fp32", return_features=True)[1])
              for split, part in data.items()}
    with_cache = train(config, data, device="cpu", progress=False, cached_features=cached)
    running = train(config, data, device="cpu", progress=False)
    assert with_cache.history[0]["train_loss"] == pytest.approx(running.history[0]["train_loss"], abs=1e-6)
    for (name, a), (_, b) in zip(with_cache.model.head.named_parameters(), running.model.head.named_parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6, msg=name)


@pytest.mark.parametrize("kind", KINDS)
def test_frozen_layers_do_not_move_and_the_weight_change_sees_it(folders, kind):
    folder = folders[kind]
    result = train(run_config(folder, frozen_layers=1), tokens(folder), device="cpu", progress=False)
    change = relative_weight_change(result.model, pretrained_encoder(folder))
    assert list(change) == ["embeddings", "layer_1", "layer_2"]
    assert change["embeddings"] == 0 and change["layer_1"] == 0 and change["layer_2"] > 0


@pytest.mark.parametrize("kind", KINDS)
def test_every_layer_trains_in_a_subspace(folders, kind):
    folder = folders[kind]
    config = dataclasses.replace(run_config(folder), subspace=SubspaceConfig(basis="random", dim=4, learning_rate=0.05))
    model = reparameterize(build_model(config), config.subspace, None, config.train.seed)
    assert all(isinstance(layer, SubspaceLayer) for layer in architectures.encoder_layers(model))
    result = train(config, tokens(folder), device="cpu", progress=False, model=model)
    assert all(layer.theta.detach().abs().sum() > 0 for layer in architectures.encoder_layers(result.model))
    materialize(result.model)
    assert not any(isinstance(layer, SubspaceLayer) for layer in architectures.encoder_layers(result.model))


@pytest.mark.parametrize("kind", KINDS)
def test_only_the_training_texts_word_embeddings_move(folders, kind):
    folder, data = folders[kind], tokens(folders[kind])
    result = train(run_config(folder), data, device="cpu", progress=False)
    owner, name = architectures.word_embeddings(result.model)
    words = getattr(owner, name)
    assert isinstance(words, torch.nn.Embedding)  # the compact stand-in was put back
    before_owner, before_name = architectures.word_embeddings(pretrained_encoder(folder))
    moved = (words.weight != getattr(before_owner, before_name).weight).any(dim=1).nonzero().squeeze(1).numpy()
    assert len(moved) > 0 and set(moved) <= set(np.unique(data["train"].input_ids))


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_cls_on_a_decoder_reads_the_last_real_token_and_there_is_no_pooler(folders, kind):
    folder, data = folders[kind], tokens(folders[kind])
    batch = data["test"].batch(np.arange(6), CPU)
    cls, last = (build_model(run_config(folder, token_selection=s)).eval() for s in ("cls", "last"))
    last.load_state_dict(cls.state_dict())
    torch.testing.assert_close(cls.features(**batch), last.features(**batch), rtol=0, atol=0)
    with pytest.raises(ConfigError, match="pooler"):
        build_model(run_config(folder, token_selection="pooler"))


@pytest.mark.parametrize("selection", ["cls", "last", "mean", "max", "max_norm_token"])
def test_selections_ignore_padding_on_either_side(selection):
    torch.manual_seed(0)
    lengths, width = torch.tensor([3, 5, 2]), 6
    tokens_ = torch.randn(3, 5, 4)
    right, left = torch.full((3, width, 4), 1e3), torch.full((3, width, 4), 1e3)  # padding vectors: huge
    right_mask, left_mask = torch.zeros(3, width, dtype=torch.long), torch.zeros(3, width, dtype=torch.long)
    for row, length in enumerate(lengths.tolist()):
        right[row, :length], right_mask[row, :length] = tokens_[row, :length], 1
        left[row, width - length:], left_mask[row, width - length:] = tokens_[row, :length], 1
    torch.testing.assert_close(select_tokens(right, right_mask, selection), select_tokens(left, left_mask, selection))
    assert select_tokens(right, right_mask, selection).abs().max() < 1e3


def test_a_pair_task_uses_the_tokenizers_own_pair_template(folders):
    split = tokens(folders["roberta"], pairs=True)["train"]
    tokenizer = load_tokenizer(folders["roberta"])
    first = split.input_ids[0, :split.lengths[0]].tolist()
    second = " ".join(reversed(CORPUS[-1].split()))  # row 0's second text (``tokens``: the texts reversed)
    assert first == tokenizer(CORPUS[0], second, truncation=True, max_length=16)["input_ids"]
    sep = tokenizer.sep_token_id
    assert any(a == b == sep for a, b in zip(first, first[1:]))  # RoBERTa's </s></s> between the texts


def test_an_unsupported_architecture_is_refused_naming_the_supported_ones(tmp_path):
    from transformers import AutoTokenizer, DistilBertConfig, DistilBertModel

    from fewdims_helpers.model.pretrained import minilm_path

    DistilBertModel(DistilBertConfig(vocab_size=30522, dim=32, n_layers=1, n_heads=4, hidden_dim=37)).save_pretrained(tmp_path)
    AutoTokenizer.from_pretrained(str(minilm_path())).save_pretrained(tmp_path)
    with pytest.raises(ModelLoadError, match="not supported.*RoBERTa.*GPT-2"):
        pretrained_encoder(str(tmp_path))


def test_the_ablation_table_names_zhang_et_als_roberta_numbers_only_for_a_roberta(folders):
    import pandas as pd

    from fewdims_helpers.studies.intrinsic import beside_zhang_roberta

    ours = pd.DataFrame({"sst2": ["90.0 ± 1.0"] * 3, "stsb": ["85.0 ± 2.0"] * 3, "rt-polarity": ["70.0 ± 3.0"] * 3},
                        index=pd.Index(["dim=8", "dim=16", "dim=32"], name="setting"))
    table = beside_zhang_roberta(ours, folders["roberta"])
    paper = table.loc[[name for name in table.index if "Zhang" in name]]
    assert list(paper["sst2"]) == ["91.93", "92.34", "92.43"] and list(paper["stsb"]) == ["84.10", "88.10", "89.43"]
    assert set(paper["rt-polarity"]) == {"—"} and table.loc["dim=16", "sst2"] == "90.0 ± 1.0"
    assert list(table.index[:2]) == ["dim=8", "dim=8 Zhang et al. RoBERTa-base (Table 6)"]
    assert beside_zhang_roberta(ours, folders["bert"]) is ours
    packaged = ours[["rt-polarity"]].rename(index={"dim=8": "dim=3"})
    assert list(beside_zhang_roberta(packaged, folders["roberta"]).index) == ["dim=3", "dim=16", "dim=32"]


def test_study_01_keeps_the_papers_selections_and_drops_the_pooler_where_there_is_none(folders):
    from fewdims_helpers.studies.token_wise import PAPER_SELECTIONS, studied_selections

    assert studied_selections("tiny") == PAPER_SELECTIONS == ("cls", "max_norm_token", "max", "mean", "pooler")
    assert studied_selections(folders["roberta"]) == PAPER_SELECTIONS
    assert studied_selections(folders["gpt2"]) == ("cls", "max_norm_token", "max", "mean")
