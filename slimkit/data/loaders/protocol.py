"""What a dataset loader is: the contract of the ``slimkit.datasets`` entry points.

A dataset kind registers a :class:`~slimkit.components.Component` whose ``params`` model
subclasses :class:`~slimkit.spec.DatasetParams` and whose ``impl`` names a loader. slimkit
calls the loader with the validated ``dataset`` section and gets the interaction log as
read; the preparation every kind shares (dedupe, k-core, chronological sort, dense ids,
item text) happens afterwards in :func:`slimkit.data.prepare.prepare`, so a loader only
reads. :func:`slimkit.plugins.check_dataset` checks a loader against this contract.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:  # pandas stays unimported until a loader runs
    from slimkit.data.raw import RawLog
    from slimkit.spec import DatasetParams

__all__ = ["DatasetLoader"]


@runtime_checkable
class DatasetLoader(Protocol):
    """``loader(params) -> RawLog``: read the files a ``dataset`` section names.

    ``params`` is the kind's own ``Params`` model (a :class:`~slimkit.spec.DatasetParams`
    subclass), already validated. The returned :class:`~slimkit.data.raw.RawLog` holds
    the interactions in source order (``user`` and ``item`` as strings, ``timestamp`` as
    int64 in ``time_unit``) and, optionally, an item table indexed by raw item id whose
    columns are text fields for ``item_text_template``. Problems in the user's files are
    raised as :class:`~slimkit.errors.DataError` naming the file and line; malformed lines
    are skipped and counted only when ``params.skip_bad_lines`` is set. The same files
    and params must give the same log (the stage cache relies on it).
    """

    def __call__(self, params: DatasetParams, /) -> RawLog: ...
