"""The encoder example of docs/plugins.md works inside a real `slimkit run`.

Its check passing is not enough (an encoder once passed `check_encoder` and then failed
inside the encode stage): here the documented block is executed in a fresh process,
which then runs the CLI on a tiny CSV dataset with that encoder. The pipeline uses the
statistics teacher and the real SmolLM2 student (one LoRA step, a few new tokens), so
the `slim` head reads item-text and rationale vectors, both from the example encoder;
`slimkit recommend --history` then scores a new user through the head's `add_user`.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import REPO

from slimkit.paths import data_dir, model_dir

pytestmark = pytest.mark.slow

DOC = REPO / "docs" / "plugins.md"
_BLOCK = re.compile(r"^```(\w+)\n(.*?)^```$", re.DOTALL | re.MULTILINE)
USERS, ITEMS, EVENTS = 10, 14, 6

SPEC = """\
dataset:
  kind: csv
  path: {root}/log.csv
  items_path: {root}/items.csv
  text_columns: [title, categories]
  item_text_template: "{{title}}; {{categories}}"
teacher:
  kind: statistics
  num_users: 4
prompt:
  max_items: 4
  max_item_chars: 40
student:
  kind: hf-lora
  epochs: 1
  max_steps: 1
  batch_size: 2
  max_new_tokens: 12
  gen_batch_size: 8
  valid_share: 0.25
encoder:
  kind: char-counts
backbone:
  kind: sasrec
  hidden_size: 8
  num_layers: 1
  num_heads: 1
  inner_size: 16
fusion:
  kind: slim
train:
  epochs: 1
  batch_size: 32
eval:
  ks: [10]
"""

RUNNER = """\
import contextlib
import sys
from pathlib import Path

block = Path(sys.argv[1]).read_text()
with contextlib.redirect_stdout(sys.stderr):  # the block prints its check's report
    exec(compile(block, "docs/plugins.md encoder block", "exec"), {"__name__": "doc_encoder"})
from slimkit.cli import main

main(sys.argv[2:])
"""


def encoder_block() -> str:
    found = [body for lang, body in _BLOCK.findall(DOC.read_text(encoding="utf-8"))
             if lang == "python" and "class CharacterCounts" in body]
    assert len(found) == 1, "docs/plugins.md must hold exactly one CharacterCounts block"
    return found[0]


def write_dataset(root: Path) -> None:
    words = ["red", "blue", "green", "quiet", "loud", "space", "ocean"]
    with open(root / "items.csv", "w") as out:
        out.write("item_id,title,categories\n")
        out.writelines(f"i{i},{words[i % 7].title()} Game {i},{words[(i * 3) % 7]} stuff\n"
                       for i in range(ITEMS))
    with open(root / "log.csv", "w") as out:
        out.write("user_id,item_id,timestamp\n")
        for u in range(USERS):
            out.writelines(f"u{u},i{(u * 2 + k * 3) % ITEMS},{1000 * u + 10 * k}\n"
                           for k in range(EVENTS))


def slimkit(root: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, SLIMKIT_CACHE_DIR=str(root / "cache"),
               SLIMKIT_DATA_DIR=str(data_dir()), SLIMKIT_MODEL_DIR=str(model_dir()),
               HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", COLUMNS="120")
    env.pop("SLIMKIT_LOAD_PLUGINS", None)
    return subprocess.run([sys.executable, str(root / "runner.py"), str(root / "block.py"),
                           *args], capture_output=True, text=True, env=env, timeout=900,
                          check=False)


def test_the_documented_encoder_runs_inside_slimkit_run(tmp_path):
    write_dataset(tmp_path)
    (tmp_path / "block.py").write_text(encoder_block())
    (tmp_path / "runner.py").write_text(RUNNER)
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC.format(root=tmp_path))

    done = slimkit(tmp_path, "run", "-c", str(spec))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    # The encode stage's vectors are the example encoder's letter counts.
    [folder] = [p for p in (tmp_path / "cache").rglob("vectors.json")]
    info = json.loads(folder.read_text())
    assert info["dim"] == 26 and info["encoder"]["kind"] == "char-counts"
    items = np.load(folder.parent / "item_vectors.npy")  # (N + 1, 26)
    assert items.shape == (ITEMS + 1, 26) and not items[0].any()
    assert np.all(items[1:].sum(axis=1) > 0) and np.all(items == np.round(items))

    # A new user: the student writes a rationale, the example encoder encodes it, and the
    # slim head places it beside the known users (add_user).
    done = slimkit(tmp_path, "recommend", "-c", str(spec), "--history", "i1,i4,i7",
                   "--json")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert result["new_user"] is True and result["rationale"]["text"].strip()
    assert len(result["items"]) >= 1
    assert {"i1", "i4", "i7"}.isdisjoint(r["item_id"] for r in result["items"])
