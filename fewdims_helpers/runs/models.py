"""The model of a stored run: the one it starts from (pretrained, another run's encoder, coordinates zeroed
from a subspace run, its layers put into a subspace) and the one it kept, built from the store's files."""
from __future__ import annotations

import dataclasses

import numpy as np
import torch

from ..config import RunConfig
from ..model.architectures import encoder_layers
from ..model.head import SequenceClassifier
from ..model.subspace import deltas, reparameterize, zero_coordinates, zeroing_masks
from ..training.loop import build_model
from .store import RunStore


def initial_model(store: RunStore, config: RunConfig) -> SequenceClassifier:
    """The model a run starts from: pretrained, or the encoder of run ``config.init_from``; its coordinates
    zeroed if ``config.zeroed`` says so; its encoder layers put into a subspace if ``config.subspace`` does
    (the subspace's trajectories are read from ``store``)."""
    model = build_model(config)
    if config.init_from is not None:
        state = store.state_dict(config.init_from)
        model.encoder.load_state_dict({k.removeprefix("encoder."): v for k, v in state.items()
                                       if k.startswith("encoder.")})
    if config.zeroed is not None:
        zeroed = config.zeroed
        zero_coordinates(model, zeroing_masks(stored_deltas(store, zeroed.source), zeroed.coordinates, zeroed.sigmas,
                                              config.train.seed))
    if config.subspace is not None:
        reparameterize(model, config.subspace, store, config.train.seed)
    return model


def stored_deltas(store: RunStore, run_id: str) -> list[np.ndarray]:
    """V theta_t of every encoder layer of a finished subspace run, from its saved theta_t (the basis
    is rebuilt from its config)."""
    source = store.stored_config(run_id)
    if source.subspace is None or source.subspace.basis == "none":
        raise ValueError(f"run {run_id} was not trained in a subspace; zeroing needs a subspace run's V theta_t")
    model = initial_model(store, source)
    thetas = store.subspace(source)
    for index, layer in enumerate(encoder_layers(model)):
        layer.theta.data = torch.from_numpy(thetas[f"layer_{index}"])
    return deltas(model)


def kept_model(store: RunStore, config: RunConfig) -> SequenceClassifier:
    """The kept model of a finished run with ``save_model=True`` (subspace runs: still re-parameterised)."""
    model = initial_model(store, dataclasses.replace(config, init_from=None))
    model.load_state_dict(store.state_dict(config.run_id))
    return model.eval()
