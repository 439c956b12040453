"""Stage output formats, one owner each: every file a stage writes is written and read here.

* :mod:`slimkit.artifacts.files`: JSON and JSON-lines helpers every stage uses;
* :mod:`slimkit.artifacts.rationales`: ``rationales.jsonl`` of the teach and distill stages;
* :mod:`slimkit.artifacts.vectors`: the encode stage's ``*.npy`` arrays and ``vectors.json``;
* :mod:`slimkit.artifacts.trained`: the train stage's ``model.safetensors``, ``model.json``
  and ``metrics.json``.

The data stage's ``interactions.npz`` / ``dataset.json`` belong to
:class:`slimkit.data.dataset.PreparedDataset` (``save`` / ``load``).
"""
