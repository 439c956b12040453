"""The ``hf-lora`` student: a Hugging Face causal LM fine-tuned with LoRA through peft.

The student learns to write the teacher's rationale from the simpler student prompt.
Training minimises the negative log-likelihood of the rationale tokens only (prompt
tokens get label ``-100``). One module per job:

* :mod:`.student`: :class:`HFLoraStudent`, the methods the distill stage calls;
* :mod:`.targets`: which modules LoRA adapts per architecture;
* :mod:`.examples`: tokenised training examples with masked labels;
* :mod:`.training`: the fit loop (AdamW, warm-up, accumulation, out-of-memory hints);
* :mod:`.adapters`: adapter folders (save, load, check, digest).
"""

from slimkit.students.hf_lora.adapters import ADAPTER_CONFIG, ADAPTER_WEIGHTS, SPEC_FILE
from slimkit.students.hf_lora.examples import IGNORE_INDEX, TrainingExample
from slimkit.students.hf_lora.student import HFLoraStudent
from slimkit.students.hf_lora.targets import DEFAULT_TARGET_MODULES, default_target_modules

__all__ = [
    "ADAPTER_CONFIG",
    "ADAPTER_WEIGHTS",
    "DEFAULT_TARGET_MODULES",
    "IGNORE_INDEX",
    "SPEC_FILE",
    "HFLoraStudent",
    "TrainingExample",
    "default_target_modules",
]
