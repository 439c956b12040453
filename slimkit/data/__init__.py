"""Datasets: from a file on disk to the prepared dataset every stage after ``data`` reads.

* :mod:`slimkit.data.loaders`: the built-in dataset kinds (light descriptors with their
  ``Params``; each loader module imports on use) and the
  :class:`~slimkit.data.loaders.protocol.DatasetLoader` contract;
* :mod:`slimkit.data.raw`: :class:`~slimkit.data.raw.RawLog`, what a dataset loader returns;
* :mod:`slimkit.data.readers`: file, JSON-lines, delimited and table readers with precise
  errors;
* :mod:`slimkit.data.text`: item text from a template, cleaned and truncated;
* :mod:`slimkit.data.prepare`: dedupe, k-core, chronological sort, dense ids;
* :mod:`slimkit.data.dataset`: :class:`~slimkit.data.dataset.PreparedDataset` and the
  positions of the leave-one-out targets (the trainer's samples,
  :mod:`slimkit.training.samples`, split every user at once);
* :mod:`slimkit.data.stats`: numbers ``slimkit data stats`` prints.

Submodules are imported on use (pandas is not needed by ``slimkit --help``).
"""
