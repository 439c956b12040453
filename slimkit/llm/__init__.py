"""In-process causal language models, shared by the local teacher and the student.

* :mod:`.loading`: find, fetch, convert and load a model (``load_causal_lm``);
* :mod:`.precision`: the one ``precision`` setting (bf16 / int8 copies, 4-bit loading);
* :mod:`.generate`: batched decoding on worker threads, Ctrl-C, stop rules;
* :mod:`.scaffold`: the logits processor that writes the "Step N:" headers;
* :mod:`.vllm`: generation on a vLLM engine (GPU).

Nothing heavy is imported here: torch and transformers load inside the functions.
"""
