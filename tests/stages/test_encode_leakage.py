"""No user's rationale vector is computed from their validation or test item.

Traced back through the prompt inputs: two datasets that differ only in every user's
last two items (the validation and test targets) must give identical teacher prompts,
identical teacher rationales, identical student prompts (the student's output is a
function of its prompt and of an adapter trained on those same teacher rationales), and
therefore identical texts reaching the encoder, none mentioning a target-only item.
"""

from __future__ import annotations

import random

import pytest

from slimkit.cache import StageCache
from slimkit.spec import validate_spec

NUM_USERS, NUM_ITEMS = 12, 30
GENRES = ["Comedy", "Drama", "Action", "Horror", "Romance", "Sci-Fi"]


def write_dataset(folder, targets_variant: int):
    """A log where user u's last two items differ between the two variants."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    rows, items = [], {}
    for i in range(1, NUM_ITEMS + 1):
        items[f"i{i}"] = (f"Movie {i}", GENRES[i % len(GENRES)] + "|" + GENRES[(i * 7) % len(GENRES)])
    for u in range(NUM_USERS):
        history = rng.sample(range(1, NUM_ITEMS + 1), 6)
        for t, i in enumerate(history):
            rows.append((f"u{u}", f"i{i}", 1000 + 10 * t))
        # Two target-only items per user and variant, with titles nothing else has.
        for t, tag in enumerate(("VALID", "TEST")):
            item = f"t{targets_variant}-{u}-{tag}"
            items[item] = (f"Zyx {tag} target {targets_variant} of u{u}", "Documentary|Western")
            rows.append((f"u{u}", item, 2000 + 10 * t))
    log = folder / "log.csv"
    log.write_text("user_id,item_id,timestamp\n" + "".join(f"{u},{i},{t}\n" for u, i, t in rows))
    table = folder / "items.csv"
    table.write_text(
        "item_id,title,categories\n" + "".join(f"{i},{t},{c}\n" for i, (t, c) in items.items())
    )
    return validate_spec(
        {
            "dataset": {"kind": "csv", "path": str(log), "items_path": str(table),
                        "text_columns": ["title", "categories"],
                        "item_text_template": "{title}; {categories}"},
            "teacher": {"kind": "statistics", "num_users": NUM_USERS},
            "fusion": {"kind": "slim"},
        }
    )


class TextRecorder:
    """Stands in for the (separately tested) encoder: records the texts it is given."""

    dim = 4

    def __init__(self):
        self.texts: list[str] = []
        self.stats = {}

    def encode(self, texts, cache=None, *, progress=False):
        import numpy as np

        self.texts.extend(texts)
        return np.ones((len(texts), self.dim), dtype=np.float32)


@pytest.mark.parametrize("variant_pair", [(1, 2)])
def test_rationale_inputs_never_include_validation_or_test_items(tmp_path, variant_pair):
    from slimkit.pipeline import Pipeline
    from slimkit.stages.distill import student_messages
    from slimkit.stages.encode import encode_all
    from slimkit.stages.teach import build_jobs

    cache = StageCache(tmp_path / "cache")
    seen = {}
    for variant in variant_pair:
        spec = write_dataset(tmp_path / f"v{variant}", variant)
        data = Pipeline(spec, cache, progress=False).dataset()
        assert data.num_users == NUM_USERS
        # The targets are the target-only items of this variant.
        for u in range(data.num_users):
            assert "VALID" in data.item_text[data.valid_target(u)]
            assert "TEST" in data.item_text[data.test_target(u)]
        jobs = {data.user_ids[j.user_index]: j for j in build_jobs(spec, data)}
        teacher = {r["user"]: r for r in Pipeline(spec, cache, progress=False).teacher_rationales()}
        students = {
            data.user_ids[u]: student_messages(spec, data, u) for u in range(data.num_users)
        }
        # The student writes one rationale per user from its prompt; here the teacher's
        # text stands in for it so the chain to the encoder can be followed.
        student_records = [
            {"user_index": u, "rationale": teacher[data.user_ids[u]]["rationale"],
             "steps": teacher[data.user_ids[u]]["steps"], "status": "done"}
            for u in range(data.num_users)
        ]
        recorder = TextRecorder()
        encode_all(data, list(teacher.values()), student_records, recorder)
        items = set(data.item_text[1:])
        rationale_texts = sorted(t for t in recorder.texts if t not in items)
        seen[variant] = (jobs, teacher, students, rationale_texts)

        for text in [str(j.messages) for j in jobs.values()] + [str(m) for m in students.values()]:
            assert "Zyx" not in text, "a prompt shows a validation or test item"
        for text in rationale_texts:
            assert "Zyx" not in text and "Documentary" not in text and "Western" not in text
        assert len(teacher) == NUM_USERS

    (jobs_a, teacher_a, students_a, texts_a), (jobs_b, teacher_b, students_b, texts_b) = (
        seen[v] for v in variant_pair
    )
    assert set(jobs_a) == set(jobs_b)
    for user in jobs_a:
        assert jobs_a[user].messages == jobs_b[user].messages
        assert teacher_a[user]["rationale"] == teacher_b[user]["rationale"]
        assert students_a[user] == students_b[user]
    assert texts_a == texts_b
