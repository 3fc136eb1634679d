"""The architecture-neutral encoder interface (``architectures.py``) leaves every BERT run as it was:
the same run ids and, bit for bit, the same metrics, weight changes and features as the code before it.

``EXPECTED`` was computed by ``fingerprint()`` on the code before the interface existed (commit 552cdc9); its run
ids were recomputed once when ``TrainConfig`` gained ``head_learning_rate``, ``eval_every`` and ``patience``
(every run id changed with the recipe's fields; no metric, weight change or feature did).
"""
from __future__ import annotations

import dataclasses

import torch

from conftest import synthetic_split, tiny_config
from fewdims_helpers.config import SubspaceConfig
from fewdims_helpers.model.pretrained import pretrained_encoder
from fewdims_helpers.model.subspace import reparameterize
from fewdims_helpers.training.loop import build_model, predict, relative_weight_change, train

VARIANTS = {
    "cls": {}, "mean": {"token_selection": "mean"}, "max": {"token_selection": "max"},
    "max_norm_token": {"token_selection": "max_norm_token", "max_norm_include_special": False},
    "pooler": {"token_selection": "pooler"}, "layer1": {"layer": 1}, "frozen1": {"frozen_layers": 1},
    "frozen_2layer_head": {"freeze_pretrained": True, "head_layers": 2}, "dims": {"selected_dims": (0, 5, 9)},
}


def fingerprint() -> dict:
    tokens = {"train": synthetic_split(32, 0), "validation": synthetic_split(16, 1), "test": synthetic_split(16, 2)}
    out = {}
    for name, fields in VARIANTS.items():
        config = tiny_config(**fields)
        result = train(config, tokens, device="cpu", progress=False)
        logits, features = predict(result.model, tokens["test"], torch.device("cpu"), "fp32", return_features=True)
        out[name] = {"run_id": config.run_id, "validation": result.history[-1]["validation"],
                     "train_loss": result.history[-1]["train_loss"],
                     "weight_change": relative_weight_change(result.model, pretrained_encoder("tiny")),
                     "logit_sum": float(logits.astype("float64").sum()),
                     "feature_sum": float(features.astype("float64").sum())}
    config = tiny_config(freeze_pretrained=True, head_layers=2)
    cached = {split: torch.from_numpy(predict(build_model(config), tokens[split], torch.device("cpu"), "fp32",
                                              return_features=True)[1]) for split in tokens}
    result = train(config, tokens, device="cpu", progress=False, cached_features=cached)
    out["frozen_cached"] = {"run_id": config.run_id, "validation": result.history[-1]["validation"],
                            "train_loss": result.history[-1]["train_loss"],
                            "feature_sum": float(cached["test"].double().sum())}
    config = dataclasses.replace(tiny_config(), subspace=SubspaceConfig(basis="random", dim=4, learning_rate=0.05))
    model = reparameterize(build_model(config), config.subspace, None, config.train.seed)
    result = train(config, tokens, device="cpu", progress=False, model=model)
    out["subspace"] = {"run_id": config.run_id, "validation": result.history[-1]["validation"],
                       "train_loss": result.history[-1]["train_loss"]}
    return out


EXPECTED = {'cls': {'feature_sum': 0.016062122536823153,
         'logit_sum': 2.254400286823511,
         'run_id': 'rt-polarity-cls-s0-a00dd9511215',
         'train_loss': 0.7050940692424774,
         'validation': {'accuracy': 0.5},
         'weight_change': {'embeddings': 0.00432493565988198,
                           'layer_1': 0.016837057862947775,
                           'layer_2': 0.01722444204365237}},
 'dims': {'feature_sum': -0.13164253532886505,
          'logit_sum': 0.30930750258266926,
          'run_id': 'rt-polarity-cls-s0-20677893af71',
          'train_loss': 0.6950858980417252,
          'validation': {'accuracy': 0.5},
          'weight_change': {'embeddings': 0.0043757985001851565,
                            'layer_1': 0.01753147853236375,
                            'layer_2': 0.016920851436204042}},
 'frozen1': {'feature_sum': -0.02220207452774048,
             'logit_sum': 2.5443873964250088,
             'run_id': 'rt-polarity-cls-s0-dc0075e1de97',
             'train_loss': 0.7038842737674713,
             'validation': {'accuracy': 0.5},
             'weight_change': {'embeddings': 0.0, 'layer_1': 0.0, 'layer_2': 0.017266746102371854}},
 'frozen_2layer_head': {'feature_sum': 6.814836524426937e-06,
                        'logit_sum': -0.14514335803687572,
                        'run_id': 'rt-polarity-cls-s0-4027115c6d86',
                        'train_loss': 0.6945844143629074,
                        'validation': {'accuracy': 0.5},
                        'weight_change': {'embeddings': 0.0, 'layer_1': 0.0, 'layer_2': 0.0}},
 'frozen_cached': {'feature_sum': 6.64952676743269e-06,
                   'run_id': 'rt-polarity-cls-s0-4027115c6d86',
                   'train_loss': 0.6945844143629074,
                   'validation': {'accuracy': 0.5}},
 'layer1': {'feature_sum': 0.10549083532168879,
            'logit_sum': 2.1758933421224356,
            'run_id': 'rt-polarity-cls-s0-072a70e84faa',
            'train_loss': 0.6982655078172684,
            'validation': {'accuracy': 0.5},
            'weight_change': {'embeddings': 0.0042540684286745565, 'layer_1': 0.016406569785271954}},
 'max': {'feature_sum': 536.0431935860543,
         'logit_sum': 5.45980229228735,
         'run_id': 'rt-polarity-max-s0-a1167be657b1',
         'train_loss': 0.6982978135347366,
         'validation': {'accuracy': 0.5625},
         'weight_change': {'embeddings': 0.004284762012302655,
                           'layer_1': 0.0163376670417227,
                           'layer_2': 0.01597733212360241}},
 'max_norm_token': {'feature_sum': -0.07922664628131315,
                    'logit_sum': 3.9511511949822307,
                    'run_id': 'rt-polarity-max_norm_token-s0-c3733bdf7037',
                    'train_loss': 0.6915796995162964,
                    'validation': {'accuracy': 0.5625},
                    'weight_change': {'embeddings': 0.004252124941111424,
                                      'layer_1': 0.01630725640512421,
                                      'layer_2': 0.015927362781739052}},
 'mean': {'feature_sum': 0.013302922481670976,
          'logit_sum': 2.784295851364732,
          'run_id': 'rt-polarity-mean-s0-6f5190a59f96',
          'train_loss': 0.6931071430444717,
          'validation': {'accuracy': 0.5},
          'weight_change': {'embeddings': 0.004383797647148726,
                            'layer_1': 0.016114221651576433,
                            'layer_2': 0.015868036096551557}},
 'pooler': {'feature_sum': 20.753396056592464,
            'logit_sum': 0.43263268657028675,
            'run_id': 'rt-polarity-pooler-s0-4a30fb94daea',
            'train_loss': 0.6946173161268234,
            'validation': {'accuracy': 0.5},
            'weight_change': {'embeddings': 0.004184924156184452,
                              'layer_1': 0.015403586128395288,
                              'layer_2': 0.015192440629998588}},
 'subspace': {'run_id': 'rt-polarity-cls-s0-9e8753741cc8',
              'train_loss': 0.7046879827976227,
              'validation': {'accuracy': 0.5}}}


def test_bert_runs_keep_their_run_ids_and_metrics():
    got = fingerprint()
    assert got == EXPECTED
