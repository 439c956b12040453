"""prompt.rationale_cut: separate through the real Pipeline on the tiny trained pipeline
(statistics teacher, tiny random student, bundled MiniLM): both rationale sets are
written by teach and distill, encoded, trained on, and the trained model reloads."""

from __future__ import annotations

import yaml
from helpers.tiny_pipeline import tiny_raw_spec
from helpers.tiny_student import build_tiny_student

from slimkit.artifacts.rationales import CUT_RATIONALES_FILE, read_rationales
from slimkit.cache import StageCache
from slimkit.data.rationale_cut import views_of
from slimkit.pipeline import Pipeline
from slimkit.spec import load_spec


def test_separate_rationales_run_end_to_end(tmp_path):
    raw = tiny_raw_spec(tmp_path, build_tiny_student(tmp_path / "student"))
    raw["prompt"].update(rationale_cut="separate", cut_items=2)
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    spec = load_spec(path)
    cache = StageCache(tmp_path / "cache")
    pipeline = Pipeline(spec, cache, progress=False)
    trained = pipeline.run("train")
    data = pipeline.dataset()
    users = data.num_users

    teach = pipeline.run("teach").path
    teacher_cut = read_rationales(teach, name=CUT_RATIONALES_FILE)
    assert len(teacher_cut) == len(read_rationales(teach)) == 12
    distill = pipeline.run("distill")
    assert distill.summary["rationale_cut"] == "separate"
    assert len(read_rationales(distill.path)) == users
    assert len(read_rationales(distill.path, name=CUT_RATIONALES_FILE)) == users
    # Every user's rationale is generated twice: from the cut and from sequence[:-2].
    assert distill.summary["generated"] >= 2 * users
    assert "fine_tuned_whole_history" in distill.summary["grounding"]
    vectors = pipeline.vectors()
    assert vectors["cut_student_vectors"].shape == vectors["student_vectors"].shape
    assert vectors["cut_teacher_vectors"].any() and vectors["cut_student_vectors"].any()
    assert vectors["info"]["cut_student_users"] == users

    assert trained.summary["test"]
    model = Pipeline(spec, cache, progress=False).trained()
    assert model.model.num_users == 2 * users + 1  # users, their rationales from the cut, none
    assert model.metrics["rationale_cut"] == "separate"
    assert len(model.recommend(0, k=3)) == 3
    # The statistics teacher counts the history it read ("Across N items"): the cut for
    # the rationales from the cut, the whole training sequence for the others.
    view = views_of(data, spec.prompt).cut
    main = {r["user_index"]: r for r in read_rationales(teach)}
    for row in teacher_cut:
        u = row["user_index"]
        assert f"Across {len(view.train_items(u))} items" in row["rationale"]
        assert f"Across {len(data.train_items(u))} items" in main[u]["rationale"]
        assert len(view.train_items(u)) < len(data.train_items(u))
