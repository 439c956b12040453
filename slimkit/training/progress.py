"""What the trainer shows while it fits: a bar per epoch with the running loss, and one
line per epoch (also logged) with the validation metric; listeners registered with
:func:`on_epoch_end` (run tracking) get each epoch's figures as they come."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Self

from slimkit.console import progress_bar
from slimkit.training.options import TrainOptions

log = logging.getLogger(__name__)

EpochListener = Callable[[int, dict[str, float]], None]
_listeners: ContextVar[tuple[EpochListener, ...]] = ContextVar("epoch_listeners", default=())


@contextmanager
def on_epoch_end(listener: EpochListener) -> Iterator[None]:
    """Call ``listener(epoch, {"loss", <valid metric>, "seconds", "seed"})`` after every
    epoch fitted inside the block (a hook, so trackers need no trainer argument)."""
    token = _listeners.set(_listeners.get() + (listener,))
    try:
        yield
    finally:
        _listeners.reset(token)


class EpochProgress:
    """A context manager: ``start_epoch``, ``advance(loss)`` per batch, ``end_epoch``.
    Disabled, it draws nothing and only logs the epoch lines; with ``report`` off (a
    distributed run's ranks other than 0) it neither logs nor calls listeners."""

    def __init__(self, enabled: bool, opts: TrainOptions, batches: int, *, report: bool = True):
        self.enabled = enabled
        self.report = report
        self.opts = opts
        self.batches = batches
        self.running, self.seen = 0.0, 0

    def __enter__(self) -> Self:
        self.bar = progress_bar("{task.fields[status]}", enabled=self.enabled, transient=True)
        self.bar.__enter__()
        self.task = self.bar.add_task("epoch", total=self.batches, status="")
        return self

    def start_epoch(self, epoch: int) -> None:
        self.running, self.seen = 0.0, 0
        self.bar.reset(
            self.task, total=self.batches, description=f"epoch {epoch}/{self.opts.epochs}"
        )

    def advance(self, loss: float) -> None:
        """One batch done: update the running mean of the loss shown beside the bar."""
        if self.enabled:
            self.seen += 1
            self.running += (loss - self.running) / self.seen
            self.bar.update(self.task, advance=1, status=f"loss {self.running:.4f}")

    def end_epoch(self, epoch: int, loss: float, value: float, improved: bool, seconds: float):
        line = (
            f"epoch {epoch:3d}  loss {loss:.4f}  valid {self.opts.valid_metric} {value:.4f}"
            f"{'  *best' if improved else ''}  {seconds:.1f}s"
        )
        if not self.report:
            return
        if self.enabled:
            self.bar.console.print(line)
        log.info(line)
        figures = {"loss": loss, self.opts.valid_metric: value, "seconds": seconds,
                   "seed": self.opts.seed}
        for listener in _listeners.get():
            listener(epoch, figures)

    def __exit__(self, *exc) -> bool:
        self.bar.__exit__(*exc)
        return False
