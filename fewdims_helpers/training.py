"""Fine-tuning and evaluation: one short training function, one no-grad evaluation.

The paper's recipe (Fukuhata & Kano 2025, Sec. 3): AdamW, lr 5e-5, batch 64, dropout 0.1, up to 5
epochs with a linear schedule; the epoch kept is the best on validation, and the kept model is
scored once on test. Speed comes from dynamic padding with length-grouped batches (``data.py``),
bf16 autocast where the hardware has native bf16 (CUDA, or CPUs with AMX/AVX512-BF16), fused
AdamW, and tokenisation done once.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .config import RunConfig
from .fast_dropout import install_fast_dropout
from .data import TokenizedSplit, length_grouped_batches, sorted_batches
from .head import SequenceClassifier
from .metrics import compute_metrics, predictions_from_logits
from .options import resolve_device, resolve_precision  # noqa: F401 (the store and studies import them here)
from .models import load_encoder, load_tokenizer
from .tasks import get_task
from .train_vocabulary import train_vocabulary

log = logging.getLogger(__name__)


def autocast(device: torch.device, precision: str):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def loss_fn(logits: torch.Tensor, labels: torch.Tensor, num_labels: int) -> torch.Tensor:
    logits = logits.float()
    if num_labels == 1:
        return F.mse_loss(logits[:, 0], labels.float())
    return F.cross_entropy(logits, labels)


def _features(model: SequenceClassifier, split: TokenizedSplit, rows: np.ndarray, device: torch.device,
              cached: torch.Tensor | None) -> torch.Tensor:
    """Head inputs (batch, hidden) of ``rows``: from the encoder, or from ``cached`` (n, hidden)."""
    if cached is not None:
        return cached[torch.from_numpy(rows)].to(device)
    return model.features(**split.batch(rows, device))


@torch.no_grad()
def predict(model: SequenceClassifier, split: TokenizedSplit, device: torch.device, precision: str,
            batch_size: int = 64, return_features: bool = False, cached: torch.Tensor | None = None
            ) -> tuple[np.ndarray, np.ndarray | None]:
    """Logits (n, num_labels) and, if asked, head-input features (n, hidden), in split order.
    ``cached``: precomputed head inputs (n, hidden) of a frozen encoder, used instead of running it."""
    was_training = model.training
    model.eval()
    logits = np.zeros((len(split), model.num_labels), dtype=np.float32)
    features = None
    for rows in sorted_batches(split.lengths, batch_size):
        with autocast(device, precision):
            batch_features = _features(model, split, rows, device, cached)
            batch_logits = model.classify(batch_features)
        logits[rows] = batch_logits.float().cpu().numpy()
        if return_features:
            if features is None:
                features = np.zeros((len(split), batch_features.shape[-1]), dtype=np.float32)
            features[rows] = batch_features.float().cpu().numpy()
    model.train(was_training)
    return logits, features


def evaluate(model: SequenceClassifier, split: TokenizedSplit, metric: str, device: torch.device,
             precision: str, batch_size: int = 64, cached: torch.Tensor | None = None) -> dict[str, float]:
    return evaluate_and_encode(model, split, metric, device, precision, batch_size, cached)[0]


def evaluate_and_encode(model: SequenceClassifier, split: TokenizedSplit, metric: str, device: torch.device,
                        precision: str, batch_size: int = 64, cached: torch.Tensor | None = None,
                        features: bool = False) -> tuple[dict[str, float], np.ndarray, np.ndarray | None]:
    """``evaluate``'s metrics, the logits (n, num_labels) they came from and, if ``features``, the head
    inputs (n, hidden), all from one pass."""
    logits, encoded = predict(model, split, device, precision, batch_size, return_features=features, cached=cached)
    return compute_metrics(metric, predictions_from_logits(logits, model.num_labels), split.labels), logits, encoded


@dataclass
class TrainResult:
    model: SequenceClassifier  # with the best epoch's weights loaded
    history: list[dict] = field(default_factory=list)  # per epoch: train loss, validation metrics, timings
    best_epoch: int = 0
    device: str = "cpu"
    precision: str = "fp32"
    dropout_rng: str = "torch"
    train_seconds: float = 0.0  # wall time of the whole fit, validation passes included


def build_model(config: RunConfig) -> SequenceClassifier:
    """The encoder of ``config.model.model`` with the configured head, seeded by the run's seed."""
    torch.manual_seed(config.train.seed)
    tokenizer = load_tokenizer(config.model.model)
    special = tuple(t for t in (tokenizer.cls_token_id, tokenizer.sep_token_id) if t is not None)
    return SequenceClassifier(load_encoder(config.model.model), config.model, get_task(config.data.task).num_labels,
                              special)


def total_steps(config: RunConfig, num_train: int) -> int:
    """Optimizer steps of a run: batches per epoch times epochs."""
    return -(-num_train // config.train.batch_size) * config.train.epochs


def parameter_groups(model: torch.nn.Module, learning_rate: float) -> list[dict]:
    """Trainable parameters grouped by learning rate: ``learning_rate``, unless a parameter carries its
    own ``learning_rate`` attribute (the subspace coordinates theta_t of ``subspace.SubspaceLayer``)."""
    groups: dict[float, list] = {}
    for p in model.parameters():
        if p.requires_grad:
            groups.setdefault(getattr(p, "learning_rate", learning_rate), []).append(p)
    return [{"params": params, "lr": lr} for lr, params in groups.items()]


def train(config: RunConfig, tokens: dict[str, TokenizedSplit], device: str | None = None,
          progress: bool = True, model: SequenceClassifier | None = None,
          cached_features: dict[str, torch.Tensor] | None = None, on_step=None) -> TrainResult:
    """Fine-tune per ``config``; keep the epoch with the best validation score.

    ``cached_features`` (split -> (n, hidden)): head inputs of a frozen encoder computed once
    (``features.frozen_features``); the head then trains on them with the same batches, dropout masks and
    optimizer steps as when the frozen encoder runs every step, at a fraction of the cost.
    ``on_step(step)`` is called after every optimizer step (1-based), e.g. to record a trajectory."""
    if cached_features is not None and not config.model.freeze_pretrained:
        raise ValueError("cached features need a frozen encoder (ModelConfig.freeze_pretrained=True)")
    spec = get_task(config.data.task)
    torch_device = resolve_device(device)
    precision = resolve_precision(config.train.precision, torch_device)
    model = (model if model is not None else build_model(config)).to(torch_device)
    dropout_rng = "torch"
    if config.train.fast_dropout and torch_device.type == "cpu":
        install_fast_dropout(model, config.train.seed)
        dropout_rng = "numpy-pcg64"
    torch.manual_seed(config.train.seed)
    rng = np.random.default_rng(config.train.seed)
    hp = config.train

    # only the word-embedding rows of the training text train (exact at weight decay 0; train_vocabulary.py)
    with train_vocabulary(model, torch.from_numpy(tokens["train"].input_ids), config.train.weight_decay):
        trainable = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(parameter_groups(model, hp.learning_rate), lr=hp.learning_rate,
                                      weight_decay=hp.weight_decay, fused=torch_device.type in ("cpu", "cuda"))
        steps_per_epoch = -(-len(tokens["train"]) // hp.batch_size)
        steps = total_steps(config, len(tokens["train"]))
        from transformers import get_scheduler
        scheduler = get_scheduler("linear", optimizer, num_warmup_steps=int(hp.warmup_ratio * steps),
                                  num_training_steps=steps)
        log.info("%s | %s | %d train / %d validation / %d test | %d epochs x %d steps | %s %s | %d trainable params",
                 spec.name, config.model.token_selection, len(tokens["train"]), len(tokens["validation"]),
                 len(tokens["test"]), hp.epochs, steps_per_epoch, torch_device, precision, sum(p.numel() for p in trainable))

        result = TrainResult(model=model, device=str(torch_device), precision=precision, dropout_rng=dropout_rng)
        best_score, best_state = -np.inf, None
        labels = torch.from_numpy(tokens["train"].labels)
        bar = tqdm(total=steps, desc=f"{spec.name}/{config.model.token_selection}/s{hp.seed}",
                   disable=not progress, leave=False)
        start, step = time.perf_counter(), 0
        model.train()
        for epoch in range(1, hp.epochs + 1):
            epoch_start, losses = time.perf_counter(), []
            for rows in length_grouped_batches(tokens["train"].lengths, hp.batch_size, rng):
                with autocast(torch_device, precision):
                    train_cache = None if cached_features is None else cached_features["train"]
                    logits = model.classify(_features(model, tokens["train"], rows, torch_device, train_cache))
                loss = loss_fn(logits, labels[rows].to(torch_device), model.num_labels)
                loss.backward()
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                losses.append(loss.item())
                bar.update()
                step += 1
                if on_step is not None:
                    on_step(step)
            validation_start = time.perf_counter()
            validation = evaluate(model, tokens["validation"], spec.metric, torch_device, precision, hp.eval_batch_size,
                                  cached=None if cached_features is None else cached_features["validation"])
            result.history.append({"epoch": epoch, "train_loss": float(np.mean(losses)), "validation": validation,
                                   "train_seconds": validation_start - epoch_start,
                                   "validation_seconds": time.perf_counter() - validation_start})
            score = float(np.nan_to_num(validation[spec.main_metric], nan=-np.inf))
            if score > best_score:
                best_score, result.best_epoch = score, epoch
                best_state = {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}
            bar.set_postfix({spec.main_metric: f"{score:.3f}"})
        bar.close()
        if best_state is not None and result.best_epoch != hp.epochs:
            model.load_state_dict(best_state, strict=False)
    result.train_seconds = time.perf_counter() - start
    return result


@torch.no_grad()
def relative_weight_change(model: SequenceClassifier, reference: torch.nn.Module) -> dict[str, float]:
    """||theta - theta_0|| / ||theta_0|| of the embeddings and of each encoder layer (all its
    parameters together), against the pretrained ``reference`` encoder."""
    blocks = {"embeddings": (model.encoder.embeddings, reference.embeddings)}
    for index, layer in enumerate(model.encoder.encoder.layer):
        blocks[f"layer_{index + 1}"] = (layer, reference.encoder.layer[index])
    change = {}
    for name, (tuned, original) in blocks.items():
        pairs = list(zip(tuned.parameters(), original.parameters()))
        moved = sum(float((a.float().cpu() - b.float()).pow(2).sum()) for a, b in pairs)
        size = sum(float(b.float().pow(2).sum()) for _, b in pairs)
        change[name] = (moved / size) ** 0.5
    return change
