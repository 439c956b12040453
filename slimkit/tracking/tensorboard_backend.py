"""Logging to TensorBoard event files (one folder per run), through torch's SummaryWriter.

The spec's values go to the HParams tab (with the run's final metrics) and, as YAML, to
the Text tab; every metric is a scalar series.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from slimkit.tracking.extra import missing_extra


class TensorBoardBackend:
    """One run's event files under ``folder``."""

    name = "tensorboard"

    def __init__(self, folder: Path):
        try:
            import tensorboard  # noqa: F401  (torch's writer needs it; say which extra)
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:
            raise missing_extra("TensorBoard", "tensorboard", exc) from exc
        self.folder = folder
        self.writer = SummaryWriter(log_dir=str(folder))
        self.params: dict[str, str | int | float | bool] = {}

    def where(self) -> str:
        return f"tensorboard --logdir {self.folder.parent}"

    def log_params(self, params: Mapping[str, str | int | float | bool]) -> None:
        self.params.update(params)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        self.params.update({f"tag.{k}": str(v) for k, v in tags.items()})

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        for key, value in metrics.items():
            self.writer.add_scalar(key, value, step)

    def log_text(self, name: str, text: str) -> None:
        # Markdown: indent by four spaces so YAML shows as a code block.
        self.writer.add_text(name, "\n".join("    " + line for line in text.splitlines()))

    def close(self, status: str, final: Mapping[str, float]) -> None:
        from torch.utils.tensorboard.summary import hparams

        # In the run's own folder (SummaryWriter.add_hparams would open a second one), so
        # the HParams tab lists this run with its scalars.
        for summary in hparams(dict(self.params), dict(final)):
            self.writer.file_writer.add_summary(summary)
        self.writer.add_text("status", status)
        self.writer.flush()
        self.writer.close()
