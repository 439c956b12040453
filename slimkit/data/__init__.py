"""Datasets as every stage after ``data`` sees them.

* :mod:`slimkit.data.raw`: :class:`~slimkit.data.raw.RawLog`, what a dataset loader returns;
* :mod:`slimkit.data.readers`: line, JSON-lines and table readers with precise errors;
* :mod:`slimkit.data.text`: item text from a template, cleaned and truncated;
* :mod:`slimkit.data.prepare`: dedupe, k-core, chronological sort, dense ids;
* :mod:`slimkit.data.dataset`: :class:`~slimkit.data.dataset.PreparedDataset`;
* :mod:`slimkit.data.split`: the chronological leave-one-out split;
* :mod:`slimkit.data.stats`: numbers ``slimkit data stats`` prints.

Submodules are imported on use (pandas is not needed by ``slimkit --help``).
"""
