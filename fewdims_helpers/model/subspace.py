"""Fine-tuning in tiny subspaces (Zhang, Liu & Shao, ACL 2023, Sec. 3): trajectories, bases, re-parameterisation.

- ``TrajectoryRecorder``: while a run fine-tunes, keeps t evenly spaced checkpoints of every
  encoder layer, each flattened into one vector (all of the layer's parameters, in
  ``named_parameters`` order) and stored compactly as float16 displacements theta_i - theta_0.
- ``trajectory_basis``: the SVD of the stacked checkpoints (t, D) in its t x t Gram-matrix form
  (W W^T = U S^2 U^T, V^T = S^-1 U^T W), so nothing larger than the checkpoints themselves and the
  basis is ever held; a final Cholesky QR makes the basis orthonormal to float32 precision. Bases
  are built and kept as (d, D) rows, the layout the re-parameterised layer streams.
- ``SubspaceLayer``: one encoder layer re-parameterised as theta = theta_0 + V mean_i(theta_t^(i))
  (Eq. 4, the ensemble of h vectors); only theta_t trains (its own learning rate, 0.01 in the paper).

Readings of the paper that matter, each a ``SubspaceConfig`` field:
- rows of the SVD (``reading``): Eq. 2 stacks the checkpoints theta_i themselves (``raw``); with the
  re-parameterisation theta_0 + V theta_t the natural rows are the updates theta_i - theta_0
  (``displacement``, the default: the fine-tuned endpoint then lies exactly in the subspace); the
  paper's remark on "principal directions if zero empirical means" gives ``centered``.
- initialisation of theta_t (``init_std``): not stated; the paper only says a single theta_t was
  sensitive to it. Note that under Adam(W) every ensemble member receives the same gradient (scaled
  by 1/h), and Adam's step does not depend on the gradient's scale, so all members move identically:
  the ensemble is equivalent to one vector started at the members' mean (up to Adam's epsilon).
"""
from __future__ import annotations

import os
from collections import OrderedDict
from typing import Protocol

import numpy as np
import torch
from torch import nn
from torch.func import functional_call

from ..config import ConfigError, RunConfig, SubspaceConfig
from .architectures import encoder_layers  # the blocks of a ``SequenceClassifier`` or of a bare model


def flatten(layer: nn.Module) -> torch.Tensor:
    """All parameters of ``layer`` as one float32 vector (D,), in ``named_parameters`` order."""
    return torch.cat([p.detach().float().reshape(-1) for p in layer.parameters()])


def parameter_slices(layer: nn.Module) -> list[tuple[str, int, int]]:
    """(name, start, stop) of each parameter of ``layer`` in its flattened vector."""
    slices, start = [], 0
    for name, p in layer.named_parameters():
        slices.append((name, start, start + p.numel()))
        start += p.numel()
    return slices


# ----------------------------------------------------------------------------- trajectories
def checkpoint_steps(total_steps: int, checkpoints: int) -> np.ndarray:
    """Global steps (1-based) at which t checkpoints are taken, evenly spaced, the last at the end."""
    steps = np.unique(np.round(np.linspace(total_steps / checkpoints, total_steps, checkpoints)).astype(int))
    if len(steps) < checkpoints:
        raise ConfigError(f"record_trajectory={checkpoints} needs at least that many training steps, but the run has "
                          f"{total_steps}; record fewer checkpoints or train longer")
    return steps


class TrajectoryRecorder:
    """Called after every optimizer step; keeps theta_i - theta_0 of every encoder layer at the
    checkpoint steps, as float16 arrays (t, D_layer)."""

    def __init__(self, model: nn.Module, checkpoints: int, total_steps: int):
        self.layers = list(encoder_layers(model))
        self.initial = [flatten(layer).cpu() for layer in self.layers]  # train() may move the model to a GPU
        self.steps = checkpoint_steps(total_steps, checkpoints)
        self.rows = [np.zeros((checkpoints, len(theta0)), dtype=np.float16) for theta0 in self.initial]

    def __call__(self, step: int) -> None:
        position = np.searchsorted(self.steps, step)
        if position < len(self.steps) and self.steps[position] == step:
            for rows, layer, theta0 in zip(self.rows, self.layers, self.initial):
                rows[position] = (flatten(layer).cpu() - theta0).numpy().astype(np.float16)


class Trajectories(Protocol):
    """Where recorded trajectories are read from: the run store (``store.RunStore``), which alone knows
    how they are laid out on disk."""

    def trajectory(self, run_id: str, layer_index: int, checkpoints: str = "all") -> torch.Tensor:
        """Recorded displacements (t, D) of one layer ('last': only the final one), float16."""

    def trajectory_stamp(self, run_id: str, layer_index: int) -> tuple:
        """Changes whenever that layer's trajectory is rewritten (a forced rerun of its source)."""


def basis_affinity(config: RunConfig) -> tuple:
    """Runs with equal keys build the same subspace bases (``layer_basis`` keeps the recent ones), so a
    scheduler keeps them on one worker, one after another."""
    sub = config.subspace
    if sub is None or sub.basis == "none":
        return ()
    if sub.basis == "random":
        return (sub.basis, sub.dim, config.train.seed)
    return (sub.basis, sub.sources, sub.checkpoints, sub.reading)  # every dim: leading directions of one basis


# ----------------------------------------------------------------------------- bases
def trajectory_basis(rows: torch.Tensor, dim: int | None, chunk: int = 1 << 13) -> torch.Tensor:
    """Orthonormal (D, dim) float32 basis of the top-``dim`` right singular vectors of ``rows`` (t, D,
    any float dtype: the stored float16 is read as it is), as a view of its contiguous (dim, D) rows;
    ``dim=None``: every direction of the trajectory's numerical rank. The bases are nested: the leading
    d columns of a larger one are the d-dimensional basis.

    Uses the Gram matrix W W^T (t x t, accumulated in float64) so the SVD costs O(t^2 D). Both passes
    over the rows go by column chunks that stay in cache, so no (D, D) matrix and no float32 or float64
    copy of the rows is ever made (30% faster per MiniLM layer than converting them whole)."""
    t, size = rows.shape
    if dim is not None and dim > t:
        raise ConfigError(f"subspace dim {dim} exceeds the {t} recorded checkpoints; use dim <= {t} or record more")
    gram = torch.zeros(t, t, dtype=torch.float64)
    for start in range(0, size, chunk):
        block = rows[:, start: start + chunk].double()
        gram += block @ block.T
    eigenvalues, eigenvectors = torch.linalg.eigh(gram)  # ascending
    eigenvalues, eigenvectors = eigenvalues.flip(0), eigenvectors.flip(1)
    rank = int((eigenvalues > eigenvalues[0] * 1e-12).sum()) if eigenvalues[0] > 0 else 0
    if rank == 0:
        raise ConfigError("the trajectory does not move (every recorded update is zero); record it from a run that "
                          "trains the encoder layers")
    if dim is not None and rank < dim:
        raise ConfigError(f"the trajectory has rank {rank} < subspace dim {dim} (checkpoints are linearly dependent); "
                          f"use dim <= {rank}")
    dim = dim or rank
    coefficients = (eigenvectors[:, :dim] / eigenvalues[:dim].sqrt()).T.float()  # (dim, t): V^T = S^-1 U^T W
    product = torch.empty(dim, size)
    for start in range(0, size, chunk):
        torch.mm(coefficients, rows[:, start: start + chunk].float(), out=product[:, start: start + chunk])
    # orthonormal in exact arithmetic; rounding leaves its Gram within about 1e-4 of I on MiniLM's
    # trajectories, and one Cholesky QR pass of so well-conditioned rows restores float32 precision
    return orthonormal_rows(product, passes=1).T


def orthonormal_rows(rows: torch.Tensor, passes: int = 2) -> torch.Tensor:
    """Orthonormal rows spanning the same nested subspaces as ``rows`` (d, D), by Cholesky QR
    repeated (CholeskyQR2: rows <- L^-1 rows with L L^T = rows rows^T): (d, d) Gram matrices instead
    of a Householder QR of the long matrix, orthonormal to float32 precision for the well-conditioned
    inputs used here."""
    for _ in range(passes):
        lower = torch.linalg.cholesky((rows @ rows.T).double())
        rows = torch.linalg.inv(lower).float() @ rows
    return rows


def random_basis(size: int, dim: int, seed: int, layer_index: int) -> torch.Tensor:
    """Random orthonormal (D, dim) basis (orthonormalised Gaussian rows), seeded per run and layer."""
    generator = torch.Generator().manual_seed(1_000_003 * seed + layer_index)
    return orthonormal_rows(torch.randn(dim, size, generator=generator)).T


_BASES: OrderedDict = OrderedDict()  # recently built bases of this process: a model's layers and its reruns
_CACHE_BUDGET: int | None = None  # bytes of kept bases; None: ``default_cache_bytes()``; workers set their share


def default_cache_bytes(processes: int = 1) -> int:
    """Bytes of bases each of ``processes`` processes keeps: 40% of this machine's memory, shared
    (MiniLM at d = 32 takes 1.36 GB a model, so on 24 GB two workers keep about three models each)."""
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        memory = 8 << 30
    return int(0.4 * memory) // max(1, processes)


def set_basis_cache(budget_bytes: int | None) -> None:
    """Bytes of recently built bases this process keeps (None: ``default_cache_bytes()``); older ones
    are dropped first. The bases of the model being trained are held by the model, not by this cache."""
    global _CACHE_BUDGET
    _CACHE_BUDGET = budget_bytes
    _evict()


def _evict() -> None:
    budget = _CACHE_BUDGET if _CACHE_BUDGET is not None else default_cache_bytes()
    while _BASES and sum(b.numel() * b.element_size() for b in _BASES.values()) > budget:
        _BASES.popitem(last=False)


def _basis_key(config: SubspaceConfig, trajectories: Trajectories, layer_index: int, size: int, seed: int
               ) -> tuple | None:
    """What a layer's basis depends on (None: not cached). A trajectory rewritten in place (a forced
    rerun of its source) changes its file's mtime, so a stale basis is never reused."""
    if config.basis == "random":
        return ("random", size, config.dim, seed, layer_index)
    if config.reading == "raw":  # depends on theta_0 too (e.g. an init_from run): always rebuilt
        return None
    stamps = tuple(trajectories.trajectory_stamp(source, layer_index) for source in config.sources)
    return ("intrinsic", stamps, config.checkpoints, config.reading, size)  # every dim: one nested basis


def layer_basis(config: SubspaceConfig, trajectories: Trajectories, layer_index: int, theta0: torch.Tensor, seed: int
                ) -> torch.Tensor:
    """The (D, d) basis of one encoder layer for ``config``, a view of contiguous (d, D) rows. An
    intrinsic basis is the leading d directions of its trajectory's full basis, so the dimensions of
    an ablation are exactly nested and share one build. Recently built bases are kept (read-only, up to
    ``set_basis_cache``'s budget, least recently used dropped first), so the runs and analyses of one
    subspace in a process build it once."""
    key = _basis_key(config, trajectories, layer_index, len(theta0), seed)
    if key is not None and key in _BASES:
        _BASES.move_to_end(key)
        basis = _BASES[key]
    else:
        basis = _build_basis(config, trajectories, layer_index, theta0, seed)
        if key is not None:
            _BASES[key] = basis
            _evict()
    if config.dim > basis.shape[1]:
        raise ConfigError(f"subspace dim {config.dim} exceeds the {basis.shape[1]} directions the trajectory of "
                          f"{config.sources} spans (one per linearly independent checkpoint); use dim <= "
                          f"{basis.shape[1]} or record more checkpoints")
    return basis[:, :config.dim]


def _build_basis(config: SubspaceConfig, trajectories: Trajectories, layer_index: int, theta0: torch.Tensor, seed: int
                 ) -> torch.Tensor:
    if config.basis == "random":
        return random_basis(len(theta0), config.dim, seed, layer_index)
    rows = torch.cat([trajectories.trajectory(source, layer_index, config.checkpoints) for source in config.sources])
    if rows.shape[1] != len(theta0):
        raise ConfigError(f"trajectory of {config.sources} has {rows.shape[1]} parameters per layer but the model has "
                          f"{len(theta0)}; the sources must fine-tune the same model")
    if config.reading == "raw":
        rows = rows.float() + theta0
    elif config.reading == "centered":
        rows = rows.float()
        rows = rows - rows.mean(0, keepdim=True)
    return trajectory_basis(rows, None)  # every direction; ``layer_basis`` keeps the leading ``config.dim``


# ----------------------------------------------------------------------------- re-parameterisation
class SubspaceLayer(nn.Module):
    """An encoder layer whose parameters are theta_0 + V mean_i(theta_t^(i)); only theta_t trains.

    V is held transposed, (d, D) row-major: both products of a step (V theta forward, V^T g
    backward) then stream it contiguously, 1.4x faster than the (D, d) layout on the reference CPU.
    They are memory-bound (V is read twice per step), which is what a subspace run costs over a
    full one. In evaluation the update is computed once per pass, not once per batch."""

    def __init__(self, layer: nn.Module, basis: torch.Tensor, ensemble: int, init_std: float,
                 learning_rate: float, generator: torch.Generator):
        super().__init__()
        self.layer = layer.requires_grad_(False)  # theta_0, frozen
        self.sizes = [p.numel() for p in layer.parameters()]
        # (d, D), rebuilt from the config; no copy if ``basis`` is already a view of rows (``layer_basis``)
        self.register_buffer("basis_rows", basis.T.contiguous(), persistent=False)
        self.theta = nn.Parameter(torch.randn(ensemble, basis.shape[1], generator=generator) * init_std)  # (h, d)
        self.theta.learning_rate = learning_rate  # read by training.parameter_groups
        self._evaluated: tuple | None = None  # ((version, address) of theta, its update) while in eval mode

    @property
    def basis(self) -> torch.Tensor:
        """V (D, d), a view."""
        return self.basis_rows.T

    def __getattr__(self, name: str):
        """Attributes the model's loop reads from its blocks (ModernBERT's ``attention_type``) come from
        the wrapped layer."""
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self._modules["layer"], name)

    def train(self, mode: bool = True):
        self._evaluated = None
        return super().train(mode)

    def delta(self) -> torch.Tensor:
        """The learned update V mean_i(theta_t^(i)) (D,), in float32 even under autocast."""
        reuse = not self.training and not torch.is_grad_enabled()
        key = (self.theta._version, self.theta.data_ptr())
        if reuse and self._evaluated is not None and self._evaluated[0] == key:
            return self._evaluated[1]
        with torch.autocast(self.basis_rows.device.type, enabled=False):
            update = self.theta.mean(0) @ self.basis_rows
        self._evaluated = (key, update) if reuse else None
        return update

    def forward(self, *args, **kwargs):
        chunks = self.delta().split(self.sizes)
        params = {name: p + chunk.view_as(p) for (name, p), chunk in zip(self.layer.named_parameters(), chunks)}
        return functional_call(self.layer, params, args, kwargs)


def reparameterize(model: nn.Module, config: SubspaceConfig, trajectories: Trajectories, seed: int) -> nn.Module:
    """Put every encoder layer of ``model`` into the subspace ``config`` (in place); 'none' freezes them."""
    layers = encoder_layers(model)
    generator = torch.Generator().manual_seed(seed)
    for index, layer in enumerate(layers):
        if config.basis == "none":
            layer.requires_grad_(False)
            continue
        basis = layer_basis(config, trajectories, index, flatten(layer), seed)
        layers[index] = SubspaceLayer(layer, basis, config.ensemble, config.init_std, config.learning_rate, generator)
    return model


@torch.no_grad()
def materialize(model: nn.Module) -> nn.Module:
    """Replace every ``SubspaceLayer`` by a plain layer holding theta_0 + V theta_t (in place)."""
    layers = encoder_layers(model)
    for index, layer in enumerate(layers):
        if isinstance(layer, SubspaceLayer):
            for p, chunk in zip(layer.layer.parameters(), layer.delta().split(layer.sizes)):
                p.add_(chunk.view_as(p).to(p.dtype))
            layers[index] = layer.layer
    return model


def subspace_state(model: nn.Module) -> dict[str, np.ndarray]:
    """theta_t (h, d) of every re-parameterised layer, keyed ``layer_<i>``: saved with each subspace run."""
    return {f"layer_{i}": layer.theta.detach().cpu().numpy() for i, layer in enumerate(encoder_layers(model))
            if isinstance(layer, SubspaceLayer)}


def deltas(model: nn.Module) -> list[np.ndarray]:
    """V theta_t (D,) of every re-parameterised layer."""
    with torch.no_grad():
        return [layer.delta().cpu().numpy() for layer in encoder_layers(model) if isinstance(layer, SubspaceLayer)]


# ----------------------------------------------------------------------------- outlier coordinates
def outlier_mask(delta: np.ndarray, sigmas: float = 3.0) -> np.ndarray:
    """Coordinates of one layer's update V theta_t deviating more than ``sigmas`` std from its mean
    (Zhang et al., Sec. 4.5)."""
    return np.abs(delta - delta.mean()) > sigmas * delta.std()


def zeroing_masks(layer_deltas: list[np.ndarray], coordinates: str, sigmas: float, seed: int) -> list[np.ndarray]:
    """Per encoder layer, the coordinates to zero: its ``sigmas`` outliers ('outliers'), or as many drawn
    at random with ``seed`` ('random', the comparison of Table 3)."""
    outliers = [outlier_mask(d, sigmas) for d in layer_deltas]
    if coordinates == "outliers":
        return outliers
    rng, masks = np.random.default_rng(seed), []
    for mask in outliers:
        chosen = np.zeros_like(mask)
        chosen[rng.choice(len(mask), int(mask.sum()), replace=False)] = True
        masks.append(chosen)
    return masks


@torch.no_grad()
def zero_coordinates(model: nn.Module, masks: list[np.ndarray], originals: list[torch.Tensor] | None = None) -> nn.Module:
    """Set the masked coordinates of every plain (not re-parameterised) encoder layer to 0, or to
    ``originals`` (each layer's flattened theta_0) when given; in place."""
    for index, (layer, mask) in enumerate(zip(encoder_layers(model), masks)):
        for (_, start, stop), p in zip(parameter_slices(layer), layer.parameters()):
            part = torch.from_numpy(np.ascontiguousarray(mask[start:stop]))
            if part.any():
                flat = p.view(-1)
                flat[part] = 0.0 if originals is None else originals[index][start:stop][part].to(p.dtype)
    return model
