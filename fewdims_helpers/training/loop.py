"""Fine-tuning and evaluation: one short training function, one no-grad evaluation.

The paper's recipe (Fukuhata & Kano 2025, Sec. 3): AdamW, lr 5e-5, batch 64, dropout 0.1, up to 5
epochs with a linear schedule; the epoch kept is the best on validation, and the kept model is
scored once on test. Here validation may run every ``eval_every`` steps (a finer curve than per
epoch), the head may have its own learning rate, and ``patience`` stops a run on a validation
plateau; the checkpoint kept is the best validation, scored once on test. Speed comes from dynamic padding with length-grouped batches (``data/tokenized.py``),
bf16 autocast where the hardware has native bf16 (CUDA, or CPUs with AMX/AVX512-BF16), fused
AdamW, and tokenisation done once. On CUDA the step also runs near the chip (``device_step.py``: batches
resident on the device, no host synchronisation per step, the best checkpoint kept in place, few padded
shapes, a large validation batch), each change a switch; any other device trains with the plain loop.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..config import RunConfig
from ..data.tasks import get_task
from ..data.tokenized import TokenizedSplit, length_grouped_batches, sorted_batches
from ..model import architectures
from ..model.head import SequenceClassifier
from ..model.pretrained import load_encoder, load_tokenizer
from ..execution import Execution, resolve
from ..stats.metrics import compute_metrics, predictions_from_logits
from .device_step import BestCheckpoint, LossMeter, ResidentSplit, StepOptions, encoder_mask, \
    features as resident_features, predict_resident, prepare_model
from .fast_dropout import install_fast_dropout
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
              cached: torch.Tensor | None, sync_free: bool = False) -> torch.Tensor:
    """Head inputs (batch, hidden) of ``rows``: from the encoder, or from ``cached`` (n, hidden).
    ``sync_free``: the encoder gets a prepared padding mask and ``cls`` reads position 0 unchecked."""
    if cached is not None:
        return cached[torch.from_numpy(rows)].to(device)
    if not sync_free:
        return model.features(**split.batch(rows, device))
    batch = split.batch(rows, device)
    return model.features(**batch, encoder_mask=encoder_mask(model, batch["attention_mask"]), first_token_real=True)


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
    model: SequenceClassifier  # with the best validation checkpoint's weights loaded
    history: list[dict] = field(default_factory=list)  # per validation: step, epoch, train loss, metrics, timings
    best_epoch: int = 0  # the epoch of the kept checkpoint (1-based)
    best_step: int = 0  # the optimizer step of the kept checkpoint
    best_index: int = 0  # the kept checkpoint's row of ``history``
    stopped_early: bool = False  # ``patience`` validations passed without a new best before the step cap
    device: str = "cpu"
    precision: str = "fp32"
    dropout_rng: str = "torch"
    train_seconds: float = 0.0  # wall time of the whole fit, validation passes included


def build_model(config: RunConfig) -> SequenceClassifier:
    """The encoder of ``config.model.model`` with the configured head, seeded by the run's seed."""
    torch.manual_seed(config.train.seed)
    tokenizer = load_tokenizer(config.model.model)
    special = architectures.special_token_ids(tokenizer)
    return SequenceClassifier(load_encoder(config.model.model), config.model, get_task(config.data.task).num_labels,
                              special)


def total_steps(config: RunConfig, num_train: int) -> int:
    """The step cap of a run: batches per epoch times epochs (early stopping may end it sooner)."""
    return -(-num_train // config.train.batch_size) * config.train.epochs


def validation_steps(config: RunConfig, num_train: int) -> list[int]:
    """The optimizer steps after which a run validates: every ``eval_every`` steps and at the cap, or at
    the end of each epoch when ``eval_every`` is 0."""
    steps_per_epoch, cap = -(-num_train // config.train.batch_size), total_steps(config, num_train)
    every = config.train.eval_every or steps_per_epoch
    return sorted(set(range(every, cap + 1, every)) | {cap})


def parameter_groups(model: torch.nn.Module, learning_rate: float, head_learning_rate: float | None = None
                     ) -> list[dict]:
    """Trainable parameters grouped by learning rate: ``learning_rate``; ``head_learning_rate`` for the
    head's (when given); or a parameter's own ``learning_rate`` attribute (the subspace coordinates
    theta_t of ``subspace.SubspaceLayer``)."""
    head = {id(p) for p in model.head.parameters()} if head_learning_rate is not None and hasattr(model, "head") \
        else set()
    groups: dict[float, list] = {}
    for p in model.parameters():
        if p.requires_grad:
            rate = head_learning_rate if id(p) in head else getattr(p, "learning_rate", learning_rate)
            groups.setdefault(rate, []).append(p)
    return [{"params": params, "lr": lr} for lr, params in groups.items()]


def train(config: RunConfig, tokens: dict[str, TokenizedSplit], device: Execution | str | None = None,
          progress: bool = True, model: SequenceClassifier | None = None,
          cached_features: dict[str, torch.Tensor] | None = None, on_step=None,
          step_options: StepOptions | None = None) -> TrainResult:
    """Fine-tune per ``config``; keep the checkpoint with the best validation score.

    Validation runs every ``eval_every`` optimizer steps (else once per epoch) and at the step cap; with
    ``patience`` > 0 training stops after that many validations without a new best.
    ``cached_features`` (split -> (n, hidden)): head inputs of a frozen encoder computed once
    (``features.frozen_features``); the head then trains on them with the same batches, dropout masks and
    optimizer steps as when the frozen encoder runs every step, at a fraction of the cost.
    ``on_step(step)`` is called after every optimizer step (1-based), e.g. to record a trajectory.
    ``step_options``: the changes of the step near the chip (``device_step.StepOptions``; default: all of them on
    CUDA, and the plain loop on any other device). ``device``: the ``Execution`` the caller resolved at its edge;
    a device name or None (tests, benchmarks) is resolved here by ``execution.resolve``."""
    if cached_features is not None and not config.model.freeze_pretrained:
        raise ValueError("cached features need a frozen encoder (ModelConfig.freeze_pretrained=True)")
    spec = get_task(config.data.task)
    execution = resolve(device)
    torch_device, precision = execution.torch_device, execution.precision(config.train.precision)
    near = (step_options if step_options is not None else StepOptions()).on(torch_device)
    model = (model if model is not None else build_model(config)).to(torch_device)
    prepare_model(model, near)
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
        optimizer = torch.optim.AdamW(parameter_groups(model, hp.learning_rate, hp.head_learning_rate),
                                      lr=hp.learning_rate, weight_decay=hp.weight_decay,
                                      fused=near.fused_adamw and torch_device.type in ("cpu", "cuda"))
        steps_per_epoch = -(-len(tokens["train"]) // hp.batch_size)
        steps = total_steps(config, len(tokens["train"]))
        checks = set(validation_steps(config, len(tokens["train"])))
        from transformers import get_scheduler
        scheduler = get_scheduler("linear", optimizer, num_warmup_steps=int(hp.warmup_ratio * steps),
                                  num_training_steps=steps)
        log.info("%s | %s | %d train / %d validation / %d test | up to %d epochs x %d steps, %d validations%s | "
                 "%s %s | %d trainable params", spec.name, config.model.token_selection, len(tokens["train"]),
                 len(tokens["validation"]), len(tokens["test"]), hp.epochs, steps_per_epoch, len(checks),
                 f", patience {hp.patience}" if hp.patience else "", torch_device, precision,
                 sum(p.numel() for p in trainable))

        result = TrainResult(model=model, device=str(torch_device), precision=precision, dropout_rng=dropout_rng)
        best_score, since_best = -np.inf, 0
        best, losses = BestCheckpoint(model, near.device_checkpoint), LossMeter(near.sync_free)
        labels = torch.from_numpy(tokens["train"].labels)
        resident = None
        if near.resident_batches:  # each split on the device once (device_step.py)
            resident = {split: ResidentSplit(tokens[split], torch_device, near.pad_multiple,
                                             None if cached_features is None else cached_features[split])
                        for split in ("train", "validation")}
        eval_batch_size = near.eval_batch_size or hp.eval_batch_size
        bar = tqdm(total=steps, desc=f"{spec.name}/{config.model.token_selection}/s{hp.seed}",
                   disable=not progress, leave=False)
        start, step = time.perf_counter(), 0
        segment_start = start
        model.train()
        for epoch in range(1, hp.epochs + 1):
            batches = length_grouped_batches(tokens["train"].lengths, hp.batch_size, rng)
            for rows, index in (resident["train"].indexed(batches) if resident else [(b, None) for b in batches]):
                with autocast(torch_device, precision):
                    if index is None:
                        train_cache = None if cached_features is None else cached_features["train"]
                        logits = model.classify(_features(model, tokens["train"], rows, torch_device, train_cache,
                                                          near.sync_free))
                    else:
                        logits = model.classify(resident_features(model, resident["train"], rows, index,
                                                                  near.sync_free))
                target = labels[rows].to(torch_device) if index is None else resident["train"].labels[index]
                loss = loss_fn(logits, target, model.num_labels)
                loss.backward()
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                losses.add(loss)
                bar.update()
                step += 1
                if on_step is not None:
                    on_step(step)
                if step not in checks:
                    continue
                train_loss = losses.mean()  # with sync_free, the first read of the device since the last validation
                validation_start = time.perf_counter()
                if resident:
                    logits_of_validation = predict_resident(model, resident["validation"],
                                                            lambda: autocast(torch_device, precision),
                                                            eval_batch_size, near.sync_free)
                    validation = compute_metrics(spec.metric, predictions_from_logits(logits_of_validation,
                                                                                      model.num_labels),
                                                 tokens["validation"].labels)
                else:
                    validation = evaluate(model, tokens["validation"], spec.metric, torch_device, precision,
                                          eval_batch_size,
                                          cached=None if cached_features is None else cached_features["validation"])
                result.history.append({"step": step, "epoch": epoch, "train_loss": train_loss,
                                       "validation": validation, "train_seconds": validation_start - segment_start,
                                       "validation_seconds": time.perf_counter() - validation_start})
                segment_start = time.perf_counter()
                score = float(np.nan_to_num(validation[spec.main_metric], nan=-np.inf))
                if score > best_score:
                    best_score, since_best = score, 0
                    result.best_epoch, result.best_step, result.best_index = epoch, step, len(result.history) - 1
                    if not (near.device_checkpoint and step == steps):  # at the last step the model is the best
                        best.keep()
                else:
                    since_best += 1
                bar.set_postfix({spec.main_metric: f"{score:.3f}"})
                if hp.patience and since_best >= hp.patience:
                    result.stopped_early = True
                    break
            if result.stopped_early:
                break
        bar.close()
        if result.best_step != step:
            best.restore()
    result.train_seconds = time.perf_counter() - start
    return result


@torch.no_grad()
def relative_weight_change(model: SequenceClassifier, reference: torch.nn.Module) -> dict[str, float]:
    """||theta - theta_0|| / ||theta_0|| of the embeddings and of each encoder layer (all its
    parameters together), against the pretrained ``reference`` encoder. The blocks are the model's own
    (``architectures.py``): a final norm after the last layer (GPT-2, Llama, ModernBERT) is in none."""
    def parameters(modules):
        return [p for module in modules for p in module.parameters()]

    blocks = {"embeddings": (parameters(architectures.embedding_modules(model.encoder)),
                             parameters(architectures.embedding_modules(reference)))}
    reference_layers = architectures.encoder_layers(reference)
    for index, layer in enumerate(architectures.encoder_layers(model.encoder)):
        blocks[f"layer_{index + 1}"] = (list(layer.parameters()), list(reference_layers[index].parameters()))
    change = {}
    for name, (tuned, original) in blocks.items():
        pairs = list(zip(tuned, original))
        moved = sum(float((a.float().cpu() - b.float()).pow(2).sum()) for a, b in pairs)
        size = sum(float(b.float().pow(2).sum()) for _, b in pairs)
        change[name] = (moved / size) ** 0.5
    return change
