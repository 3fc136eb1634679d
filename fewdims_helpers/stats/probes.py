"""Linear probes fitted many at a time, for Matton & de Oliveira (2020): the PCA curves of Sec. 3.1
and the salient-neuron search of Sec. 3.2.

A probe is L2-regularised logistic regression (classification) or ridge regression (regression) on
features standardised on train; its strength is chosen on validation from ``STRENGTHS`` and it is
scored on test. The objectives are scikit-learn's, so ``strength`` means what it means there:
``LogisticRegression(C=1/strength)`` (sum of log-losses + strength/2 ||W||^2, intercept free; one
logit for two classes, one per class otherwise) and ``Ridge(alpha=strength)``.

Why not scikit-learn: the greedy search of Sec. 3.2 fits one probe per (candidate dimension, fold)
at every step, about 2,000 for a 384-d model and 5 folds, and ``SequentialFeatureSelector`` would fit
them one by one (about 10,000 fits per search). Here a whole step is one batch: Newton's method with
the exact Hessian and a batched step-size search (logistic), or the closed form (ridge), in float64
torch. Classification problems with more than ``NEWTON_MAX_PARAMETERS`` parameters (many dimensions
and classes, where a dense Hessian costs more than it saves) go to scikit-learn's L-BFGS, which
minimises the same objective; ``tests/test_salient.py`` checks that the two agree.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..task_specs import TaskSpec
from .metrics import compute_metrics
from .scores import batch_scores, predictions_of

STRENGTHS = tuple(float(s) for s in np.logspace(-2, 4, 7))  # L2 strengths tried; the best on validation is kept
SEARCH_STRENGTH = 1.0  # the greedy search's small L2: keeps separable folds finite
SEARCH_TOL = 1e-6  # the search ranks candidates by held-out accuracy: no need to converge to 1e-8
NEWTON_MAX_PARAMETERS = 512
_INTERCEPT_RIDGE = 1e-6  # pins the free intercepts (K logits, a class missing from a fold); negligible otherwise
_STEPS = (1.0, 0.5, 0.25, 0.125, 0.0625)  # Newton step sizes: each problem keeps the first that lowers it
_CHUNK_ELEMENTS = 10_000_000  # largest (batch, n, classes, d) intermediate, in elements


def standardize(train: np.ndarray, *others: np.ndarray, shared: bool = False) -> list[np.ndarray]:
    """Features (..., n, d) centred by train's per-dimension mean and scaled by its per-dimension std
    (constant dimensions: 1) or, if ``shared``, by one scale per set (the root-mean-square std) that
    keeps the dimensions' relative variances: principal components, whose trailing in-domain
    directions have almost no train variance, would otherwise be blown up to unit variance."""
    mean = train.mean(axis=-2, keepdims=True)
    std = train.std(axis=-2, keepdims=True)
    if shared:
        std = np.sqrt((std ** 2).mean(axis=-1, keepdims=True))
    std = np.where(std > 1e-12, std, 1.0)
    return [((array - mean) / std).astype(np.float64) for array in (train, *others)]


def _with_intercept(x: torch.Tensor) -> torch.Tensor:
    return torch.cat([x, x.new_ones(*x.shape[:-1], 1)], dim=-1)  # (B, n, d) -> (B, n, d + 1)


def _link(z: torch.Tensor, y: torch.Tensor, num_classes: int):
    """Per-example loss (B, n), residual dL/dz (B, k, n) and curvature d2L/dz2 = diag(a) - q q^T as a
    and q (B, k, n), of logits z (B, k, n); k = 1 for two classes (sigmoid), else softmax. Examples
    lie along the last dim throughout: reductions over a short last dim are slow on CPU."""
    if num_classes == 2:
        p, target = torch.sigmoid(z), y.to(z.dtype)[None, None]
        return (F.softplus(z) - target * z)[:, 0], p - target, p * (1 - p), None
    log_p = torch.log_softmax(z, dim=1)
    p = log_p.exp()
    index = y.expand(z.shape[0], 1, -1)  # (B, 1, n)
    return -log_p.gather(1, index)[:, 0], p.scatter_add(1, index, -torch.ones_like(index, dtype=z.dtype)), p, p


def _value(theta, columns, y, weight, penalty, num_classes) -> torch.Tensor:
    """Objective (B,) at parameters theta (B, k, d + 1); columns: features (B, d + 1, n)."""
    loss = _link(theta @ columns, y, num_classes)[0]
    return (weight * loss).sum(-1) + 0.5 * (penalty * theta ** 2).sum((1, 2))


def _hessian(columns: torch.Tensor, weight: torch.Tensor, diagonal: torch.Tensor, outer: torch.Tensor | None
             ) -> torch.Tensor:
    """sum_i w_i (diag(a_i) - q_i q_i^T) kron x_i x_i^T as (B, k (d + 1), k (d + 1))."""
    batch, width, _ = columns.shape
    k = diagonal.shape[1]
    weighted = diagonal * weight[:, None]  # (B, k, n)
    hessian = columns.new_zeros(batch, k, width, k, width)
    for index in range(k):
        hessian[:, index, :, index, :] = (columns * weighted[:, index, None]) @ columns.transpose(1, 2)
    hessian = hessian.reshape(batch, k * width, k * width)
    if outer is not None:  # weights are >= 0, so sqrt(w) on both sides gives w once
        spread = ((outer * weight.sqrt()[:, None])[:, :, None, :] * columns[:, None]).reshape(batch, k * width, -1)
        hessian = hessian - spread @ spread.transpose(1, 2)  # spread: (B, k (d+1), n)
    return hessian


def _solve(hessian: torch.Tensor, gradient: torch.Tensor) -> torch.Tensor:
    """H^-1 g (B, p) by Cholesky (H is positive definite: every coordinate carries an L2 penalty); a
    diagonally scaled gradient step where the factorisation fails numerically."""
    factor, info = torch.linalg.cholesky_ex(hessian)
    newton = torch.cholesky_solve(gradient[..., None], factor)[..., 0]
    fallback = gradient / hessian.diagonal(dim1=1, dim2=2).clamp(min=1e-12)
    return torch.nan_to_num(torch.where(info[:, None] == 0, newton, fallback))


def _newton_step(theta, direction, value, columns, y, weight, penalty, num_classes):
    """theta - t * direction with the first t of ``_STEPS`` that lowers each problem's objective (else
    theta), trying smaller steps only on the problems still without one."""
    candidate = theta - _STEPS[0] * direction  # the full step, on every problem without copying its features
    candidate_value = _value(candidate, columns, y, weight, penalty, num_classes)
    better = candidate_value < value
    theta, value = torch.where(better[:, None, None], candidate, theta), torch.where(better, candidate_value, value)
    pending = torch.nonzero(~better)[:, 0]
    for step in _STEPS[1:]:
        if len(pending) == 0:
            break
        candidate = theta[pending] - step * direction[pending]
        candidate_value = _value(candidate, columns[pending], y, weight[pending], penalty[pending], num_classes)
        better = candidate_value < value[pending]
        theta[pending[better]], value[pending[better]] = candidate[better], candidate_value[better]
        pending = pending[~better]
    return theta, value


def _newton(columns, y, weight, penalty, theta, num_classes: int, max_iter: int, tol: float) -> torch.Tensor:
    """Newton's method from theta (B, k, d + 1) on features columns (B, d + 1, n)."""
    batch, n = theta.shape[0], columns.shape[2]
    value = _value(theta, columns, y, weight, penalty, num_classes)
    for _ in range(max_iter):
        _, residual, diagonal, outer = _link(theta @ columns, y, num_classes)
        gradient = (residual * weight[:, None]) @ columns.transpose(1, 2) + penalty * theta  # (B, k, d+1)
        if gradient.abs().amax() < tol * n:
            break
        hessian = _hessian(columns, weight, diagonal, outer)
        hessian = hessian + torch.diag_embed(penalty.expand_as(theta).reshape(batch, -1))
        direction = _solve(hessian, gradient.reshape(batch, -1)).reshape(theta.shape)
        updated, value = _newton_step(theta, direction, value, columns, y, weight, penalty, num_classes)
        if torch.equal(updated, theta):
            break
        theta = updated
    return theta


def fit_logistic(x: torch.Tensor, y: torch.Tensor, num_classes: int, strength: torch.Tensor,
                 weight: torch.Tensor | None = None, init: torch.Tensor | None = None, max_iter: int = 40,
                 tol: float = 1e-8) -> torch.Tensor:
    """Parameters (B, k, d + 1) (intercept last; k = 1 for two classes, else ``num_classes``) minimising
    sum_i weight_i log-loss_i + strength/2 ||W||^2 for each of B problems at once, by Newton's method
    from ``init`` (B, k, d + 1) or zeros. x: (B, n, d); y: (n,) class ids; strength: (B,);
    weight: (B, n) (0 leaves a row out) or None. Stops when every |gradient| < tol * n."""
    if num_classes < 2:
        raise ValueError(f"logistic probes need num_classes >= 2, got {num_classes}; use fit_ridge for regression")
    columns = _with_intercept(x.double()).transpose(1, 2).contiguous()  # (B, d + 1, n)
    batch, width, n = columns.shape
    weight = columns.new_ones(batch, n) if weight is None else weight.double()
    k = 1 if num_classes == 2 else num_classes
    theta = columns.new_zeros(batch, k, width) if init is None else init.double()
    penalty = torch.full((batch, 1, width), _INTERCEPT_RIDGE, dtype=torch.float64)
    penalty[:, :, :-1] = strength.double()[:, None, None]
    chunk = max(1, _CHUNK_ELEMENTS // (n * k * width))
    return torch.cat([_newton(columns[i:i + chunk], y, weight[i:i + chunk], penalty[i:i + chunk], theta[i:i + chunk],
                              num_classes, max_iter, tol) for i in range(0, batch, chunk)])


def fit_ridge(x: torch.Tensor, y: torch.Tensor, strength: torch.Tensor, weight: torch.Tensor | None = None
              ) -> torch.Tensor:
    """Parameters (B, 1, d + 1) minimising sum_i weight_i (y_i - x_i b - c)^2 + strength ||b||^2, closed form.
    x: (B, n, d); y: (n,); strength: (B,); weight: (B, n) or None."""
    x, y = x.double(), y.double()
    weight = x.new_ones(x.shape[:2]) if weight is None else weight.double()
    total = weight.sum(1, keepdim=True)  # (B, 1)
    mean_x = (weight[..., None] * x).sum(1) / total  # (B, d)
    mean_y = (weight * y).sum(1) / total[:, 0]  # (B,)
    centred = x - mean_x[:, None]
    weighted = (centred * weight[..., None]).transpose(1, 2)  # (B, d, n)
    gram = weighted @ centred + strength.double()[:, None, None] * torch.eye(x.shape[2], dtype=torch.float64)
    coef = torch.linalg.solve(gram, weighted @ (y - mean_y[:, None])[..., None])[..., 0]  # (B, d)
    return torch.cat([coef, (mean_y - (mean_x * coef).sum(1))[:, None]], dim=1)[:, None, :]


def decision(theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Outputs (B, m, k) of parameters theta (B, k, d + 1) on x (B, m, d)."""
    return _with_intercept(x.double()) @ theta.transpose(1, 2)


def _fit_grid(train: np.ndarray, labels: np.ndarray, spec: TaskSpec, strengths: tuple[float, ...]):
    """Fitted parameters (S * G, k, d + 1) for every feature set (S, n, d) and strength (G)."""
    sets, grid = train.shape[0], len(strengths)
    x = torch.from_numpy(train).repeat_interleave(grid, dim=0)
    strength = torch.tensor(strengths, dtype=torch.float64).repeat(sets)
    if spec.is_regression:
        return fit_ridge(x, torch.from_numpy(labels), strength)
    return fit_logistic(x, torch.from_numpy(labels), spec.num_labels, strength)


def _sklearn_outputs(train, labels, evaluated: list[np.ndarray], strengths, k: int) -> list[torch.Tensor]:
    """Outputs (S * G, m, k) of scikit-learn's L-BFGS logistic probes, for problems too big for Newton:
    the logit (k = 1), or log-probabilities in class-id columns (-inf for a class absent from train)."""
    from sklearn.linear_model import LogisticRegression

    outputs = [[] for _ in evaluated]
    for s in range(train.shape[0]):
        for strength in strengths:
            model = LogisticRegression(C=1.0 / strength, max_iter=2000, tol=1e-6).fit(train[s], labels)
            for out, x in zip(outputs, evaluated):
                if k == 1:
                    out.append(model.decision_function(x[s])[:, None])
                else:
                    full = np.full((len(x[s]), k), -np.inf)
                    full[:, model.classes_] = model.predict_log_proba(x[s])
                    out.append(full)
    return [torch.from_numpy(np.stack(out)) for out in outputs]


def probe_scores(train: np.ndarray, validation: np.ndarray, test: np.ndarray, labels: dict[str, np.ndarray],
                 spec: TaskSpec, strengths: tuple[float, ...] = STRENGTHS, shared_scale: bool = False) -> np.ndarray:
    """Test metric (S,) (the task's main metric) of a probe on each of S feature sets; see ``probe_results``."""
    return probe_results(train, validation, test, labels, spec, strengths, shared_scale)["test"]


def probe_results(train: np.ndarray, validation: np.ndarray, test: np.ndarray, labels: dict[str, np.ndarray],
                  spec: TaskSpec, strengths: tuple[float, ...] = STRENGTHS, shared_scale: bool = False
                  ) -> dict[str, np.ndarray]:
    """The package's one linear-head refit: validation and test main metric (each (S,)) of a probe on each
    of S feature sets, each with its strength chosen on validation by accuracy (also where the main metric
    is another, e.g. Matthews correlation) or Pearson r (regression). train/validation/test: (S, n, d)
    features of the same S sets; labels: split -> (n,); ``shared_scale``: see ``standardize``."""
    guesses = probe_predictions(train, validation, test, labels, spec, strengths, shared_scale)
    return {split: np.array([compute_metrics(spec.metric, guess, labels[split])[spec.main_metric] for guess in rows])
            for split, rows in guesses.items()}


def probe_predictions(train: np.ndarray, validation: np.ndarray, test: np.ndarray, labels: dict[str, np.ndarray],
                      spec: TaskSpec, strengths: tuple[float, ...] = STRENGTHS, shared_scale: bool = False
                      ) -> dict[str, np.ndarray]:
    """Per-example predictions of the probes of ``probe_results``: split ("validation", "test") -> (S, m)
    class ids (classification) or values (regression), each set's strength chosen on validation. The
    verdicts are computed from these (``verdicts.Outcomes``)."""
    if not (train.ndim == validation.ndim == test.ndim == 3):
        raise ValueError(f"probe_scores needs (sets, examples, dims) arrays, got shapes {train.shape}, "
                         f"{validation.shape}, {test.shape}; add a leading axis for a single set")
    train, validation, test = standardize(train, validation, test, shared=shared_scale)
    sets, grid, k = train.shape[0], len(strengths), 1 if spec.num_labels <= 2 else spec.num_labels
    if spec.is_regression or k * (train.shape[2] + 1) <= NEWTON_MAX_PARAMETERS:
        theta = _fit_grid(train, labels["train"], spec, strengths)
        on_validation, on_test = (decision(theta, torch.from_numpy(x).repeat_interleave(grid, dim=0))
                                  for x in (validation, test))
    else:
        on_validation, on_test = _sklearn_outputs(train, labels["train"], [validation, test], strengths, k)
    metric = "pearson" if spec.is_regression else "accuracy"
    chosen = batch_scores(metric, predictions_of(on_validation, spec.is_regression), torch.from_numpy(labels["validation"]))
    chosen = chosen.reshape(sets, grid).argmax(1)  # first of ties: the weakest strength of the grid's order
    result = {}
    for split, outputs in (("validation", on_validation), ("test", on_test)):
        outputs = outputs.reshape(sets, grid, *outputs.shape[1:])[torch.arange(sets), chosen]  # (S, m, k)
        result[split] = predictions_of(outputs, spec.is_regression).numpy()
    return result


def refit(features: dict[str, np.ndarray], labels: dict[str, np.ndarray], spec: TaskSpec,
          columns: list[int] | None = None) -> dict[str, float]:
    """Validation and test main metric of one linear head refit (``probe_results``) on the train
    features (n, hidden) of ``columns`` (all if None): the head a study refits on cached features."""
    chosen = (lambda x: x) if columns is None else (lambda x: x[:, list(columns)])
    result = probe_results(*(chosen(features[s])[None] for s in ("train", "validation", "test")), labels, spec)
    return {split: float(scores[0]) for split, scores in result.items()}


def refit_predictions(features: dict[str, np.ndarray], labels: dict[str, np.ndarray], spec: TaskSpec,
                      columns: list[int] | None = None) -> dict[str, np.ndarray]:
    """The per-example predictions (m,) of ``refit``'s head on validation and test."""
    chosen = (lambda x: x) if columns is None else (lambda x: x[:, list(columns)])
    result = probe_predictions(*(chosen(features[s])[None] for s in ("train", "validation", "test")), labels, spec)
    return {split: rows[0] for split, rows in result.items()}


def fold_ids(labels: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Fold (n,) of each row, stratified: rows sorted by label (random order within a label) are dealt
    round-robin, so every fold gets the same share of each class (or of each range of a regression target)."""
    if len(labels) < folds:
        raise ValueError(f"{folds}-fold cross-validation needs at least {folds} training examples, got "
                         f"{len(labels)}; lower folds or use more training examples")
    order = np.lexsort((np.random.default_rng(seed).random(len(labels)), labels))
    fold = np.empty(len(labels), dtype=np.int64)
    fold[order] = np.arange(len(labels)) % folds
    return fold


def _cross_validated(x: torch.Tensor, y: torch.Tensor, held_out: torch.Tensor, num_labels: int, strength: float,
                     init: torch.Tensor | None) -> tuple[np.ndarray, np.ndarray, torch.Tensor | None]:
    """Mean held-out metric and loss (C,) of the probe on each candidate feature set x (C, n, m) over
    the folds held_out (F, n), and the fitted logistic parameters (C F, k, m + 1) (None for ridge)."""
    candidates, folds = x.shape[0], held_out.shape[0]
    batch_x = x.repeat_interleave(folds, dim=0)  # (C F, n, m), candidate-major
    mask = held_out.repeat(candidates, 1).double()  # (C F, n)
    strengths = torch.full((candidates * folds,), strength, dtype=torch.float64)
    if num_labels == 1:
        theta = None
        outputs = decision(fit_ridge(batch_x, y, strengths, 1 - mask), batch_x)
        loss = ((outputs[..., 0] - y.double()) ** 2 * mask).sum(1) / mask.sum(1)
    else:
        theta = fit_logistic(batch_x, y, num_labels, strengths, 1 - mask, init, tol=SEARCH_TOL)
        outputs = decision(theta, batch_x)
        loss = (_link(outputs.transpose(1, 2), y, num_labels)[0] * mask).sum(1) / mask.sum(1)
    regression = num_labels == 1
    metric = batch_scores("pearson" if regression else "accuracy", predictions_of(outputs, regression), y, mask)
    return metric.reshape(candidates, folds).mean(1).numpy(), loss.reshape(candidates, folds).mean(1).numpy(), theta


def _warm_start(previous: torch.Tensor | None, candidates: int) -> torch.Tensor | None:
    """Start of the next step's (C F, k, m + 2) problems: the chosen probe of each fold (F, k, m + 1)
    with a zero weight for the new candidate dimension (inserted before the intercept)."""
    if previous is None:
        return None
    zero = previous.new_zeros(*previous.shape[:2], 1)
    return torch.cat([previous[:, :, :-1], zero, previous[:, :, -1:]], dim=2).repeat(candidates, 1, 1)


def greedy_forward_selection(features: np.ndarray, labels: np.ndarray, num_labels: int, steps: int,
                             folds: int = 5, seed: int = 0, strength: float = SEARCH_STRENGTH) -> list[int]:
    """Dimensions of ``features`` (n, hidden) chosen one at a time (Matton & de Oliveira, Sec. 3.2): each
    step adds the candidate with the best mean held-out metric over ``folds`` stratified folds (ties:
    lower held-out loss). All (candidate, fold) probes of a step are fitted as one batch, each
    started from the probe chosen at the step before."""
    if not 1 <= steps <= features.shape[1]:
        raise ValueError(f"steps must be between 1 and the {features.shape[1]} dimensions, got {steps}")
    x = torch.from_numpy(standardize(features)[0])
    y = torch.from_numpy(labels)
    held_out = torch.from_numpy(fold_ids(labels, folds, seed)[None, :] == np.arange(folds)[:, None])  # (F, n)
    chosen: list[int] = []
    previous = None  # (F, k, m + 1): the chosen probe of each fold
    for _ in range(steps):
        candidates = np.setdiff1d(np.arange(features.shape[1]), chosen)
        columns = np.concatenate([np.tile(np.asarray(chosen, dtype=np.int64), (len(candidates), 1)),
                                  candidates[:, None]], axis=1)  # (C, m)
        metric, loss, theta = _cross_validated(x[:, torch.from_numpy(columns)].permute(1, 0, 2), y, held_out,
                                               num_labels, strength, _warm_start(previous, len(candidates)))
        best = int(np.lexsort((loss, -metric))[0])
        chosen.append(int(candidates[best]))
        previous = None if theta is None else theta.reshape(len(candidates), folds, *theta.shape[1:])[best]
    return chosen
