"""Data-parallel training with torch DistributedDataParallel, one process per rank as
``torchrun`` starts them (gloo on CPU, NCCL on CUDA).

Every rank walks the same shuffled order of training rows (the trainer's generator is
seeded identically), so the global batch is exactly the single-process batch; rank ``r``
takes rows ``r, r + W, r + 2W, ...`` of it (as ``DistributedSampler`` splits a dataset).
DDP averages gradients over the ``W`` ranks, so each rank scales its mean loss by
``n_r * W / T`` (``n_r`` its targets, ``T`` the batch's): the averaged gradient is then
the gradient of the mean over the whole batch, also when shares are uneven (the last
batch of an epoch, causal windows holding different numbers of targets). A rank whose
share is empty (a batch of fewer rows than ranks) runs one row with weight 0, so it still
takes part in the gradient all-reduce. The loss shown is the batch mean summed over ranks.

Validation runs on rank 0 alone and its value is broadcast, so every rank takes the same
early-stopping decision; the trained model and every report come from rank 0.

The model is wrapped in a :class:`LossCall` whose forward runs the trainer's loss
function, so every use of the parameters in a step (backbone, fusion head, item matrix)
happens inside one DDP forward, and any Recommender (plugin backbones included) trains
unchanged. ``static_graph=True`` lets DDP find parameters a head never uses in the loss
once, on the first step.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

TORCHRUN_VARIABLES = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
"""Set by ``torchrun`` in every process it starts (``env://`` initialisation reads them)."""


def launched_by_torchrun(environ: dict[str, str] | None = None) -> bool:
    """Whether this process is one rank of a ``torchrun`` group."""
    env = os.environ if environ is None else environ
    return all(env.get(name) for name in TORCHRUN_VARIABLES)


def env_rank(environ: dict[str, str] | None = None) -> int:
    """This process's global rank as torchrun set it (0 outside torchrun)."""
    env = os.environ if environ is None else environ
    return int(env.get("RANK", "0") or 0)


@dataclass(frozen=True)
class Group:
    """The process group this process trains in."""

    rank: int
    world: int
    local_rank: int
    backend: str  # "gloo" | "nccl"
    device: torch.device  # where this rank's model and collectives live

    @property
    def main(self) -> bool:
        """Rank 0: the one that evaluates, writes and prints."""
        return self.rank == 0

    def share(self, index: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, float, int]:
        """This rank's rows of a global batch: ``(rows, loss scale, targets in the batch)``.

        ``index`` (B,) are the batch's rows and ``targets`` (B,) how many targets each
        holds (1 per prefix sample; its loss positions per causal window). The scale
        ``n_r * W / T`` makes DDP's averaged gradient that of the whole batch's mean loss.
        """
        total = int(targets.sum())
        mine = index[self.rank :: self.world]  # (B_r,)
        if len(mine) == 0:  # fewer rows than ranks: compute one row, count it 0 times
            return index[:1], 0.0, total
        own = int(targets[self.rank :: self.world].sum())
        return mine, own * self.world / max(total, 1), total

    def batch_loss(self, loss: torch.Tensor, scale: float) -> float:
        """The whole batch's mean loss from each rank's scaled mean (one all-reduce)."""
        value = (loss.detach().double() * scale / self.world).reshape(1).to(self.device)
        dist.all_reduce(value)
        return float(value)

    def from_main(self, compute: Callable[[], float]) -> float:
        """``compute()`` run on rank 0 alone, its value broadcast to every rank."""
        value = torch.zeros(1, dtype=torch.float64, device=self.device)
        if self.main:
            value.fill_(float(compute()))
        dist.broadcast(value, src=0)
        return float(value)

    def wrap(self, model: torch.nn.Module) -> torch.nn.parallel.DistributedDataParallel:
        """``model`` inside a :class:`LossCall` inside DDP (parameters broadcast from rank 0).

        Buffers are not broadcast every step: the heads' buffers (item text vectors,
        rationale tables) do not change in training, and some are large.
        """
        import inspect

        from torch.nn.parallel import DistributedDataParallel

        device_ids = [self.device.index] if self.device.type == "cuda" else None
        # Newer torch renamed the switch (and warns about the old name).
        no_sync = ("forward_sync_buffers" if "forward_sync_buffers"
                   in inspect.signature(DistributedDataParallel).parameters else "broadcast_buffers")
        return DistributedDataParallel(LossCall(model), device_ids=device_ids, static_graph=True,
                                       **{no_sync: False})


class LossCall(torch.nn.Module):
    """What DDP wraps: ``forward(compute, *args)`` returns ``compute(*args)``, a loss
    function that reads the wrapped recommender, so DDP sees one forward per step."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, compute: Callable[..., torch.Tensor], *args: Any) -> torch.Tensor:
        return compute(*args)


def rank_seed(seed: int, rank: int) -> int:
    """The seed of rank ``rank``'s global generators (dropout, sampled negatives): rank 0
    keeps ``seed``, so a one-process group draws what a plain run draws."""
    return seed + 7919 * rank


def current() -> Group | None:
    """The group this process trains in (started by :func:`start`), or None."""
    return _group


_group: Group | None = None


def start(device: str, *, timeout_s: float = 1800.0) -> Group:
    """Join the torchrun group (``env://``): NCCL when ``device`` is CUDA, else gloo. On
    CUDA each rank uses GPU ``LOCAL_RANK``."""
    global _group
    if _group is not None:
        return _group
    local_rank = int(os.environ.get("LOCAL_RANK", "0") or 0)
    if device.startswith("cuda"):
        gpus = torch.cuda.device_count()
        if local_rank >= gpus:
            from slimkit.errors import SlimkitError

            raise SlimkitError(
                f"Rank with LOCAL_RANK {local_rank} has no GPU of its own: this machine has "
                f"{gpus} (NCCL needs one GPU per process).",
                hint=f"Start at most {gpus} processes per machine, or train on CPU "
                "(--set train.device=cpu, gloo).")
        torch.cuda.set_device(local_rank)
        backend, where = "nccl", torch.device("cuda", local_rank)
    else:
        backend, where = "gloo", torch.device("cpu")
    if not dist.is_initialized():
        dist.init_process_group(backend, timeout=timedelta(seconds=timeout_s))
    _group = Group(rank=dist.get_rank(), world=dist.get_world_size(), local_rank=local_rank,
                   backend=backend, device=where)
    return _group


def stop() -> None:
    """Leave the group (destroys the process group)."""
    global _group
    _group = None
    if dist.is_initialized():
        dist.destroy_process_group()


def broadcast_object(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank (a small picklable value)."""
    box = [obj if _group is None or _group.main else None]
    if dist.is_initialized():
        dist.broadcast_object_list(box, src=0)
    return box[0]
