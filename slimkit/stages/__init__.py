"""Pipeline stages: data -> teach -> distill -> encode -> train.

Each stage module holds one function of (the spec, the stage's upstream outputs, the
folder to write into) that returns the stage's summary: ``data.prepare_data``,
``teach.teach``, ``distill.distill``, ``encode.encode``, ``train.train``. A stage never runs
or reads another stage: :class:`slimkit.pipeline.Pipeline` decides what runs, takes
outputs from the cache and passes them in. File formats belong to
:mod:`slimkit.artifacts`.
"""
