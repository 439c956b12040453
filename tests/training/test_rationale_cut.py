"""Leakage-free training rationales (prompt.rationale_cut): no training target ever reads
a rationale written from a history that holds it.

Tiny data in which every item has a distinct title and no user repeats an item, and a
teacher that names every item of the history it is given: a rationale "names" a target
exactly when its history held it. The teacher runs through the real teach stage, its rows
through the real encode step (an encoder that remembers which text made which vector), the
per-user table through the train stage's own functions, and the trainer's batches are
recorded where the loss is computed, in both training modes.
"""

from __future__ import annotations

import numpy as np
import pytest

from slimkit.artifacts.rationales import CUT_RATIONALES_FILE, read_rationales
from slimkit.cache import StageCache
from slimkit.data.dataset import PreparedDataset
from slimkit.data.facts import training_popularity
from slimkit.data.rationale_cut import CutHistories, cut_positions, rationale_views, views_of
from slimkit.registry import registry
from slimkit.spec import TeacherParams, validate_spec

LENGTHS = [5, 7, 12, 20, 26, 9, 3]
NUM_ITEMS = 40
CUT_ITEMS = 3


def title(item: int) -> str:
    return f"m{int(item):03d}"


def tiny_data() -> PreparedDataset:
    """Users of LENGTHS interactions, each item at most once per user."""
    rng = np.random.default_rng(0)
    seqs = [rng.choice(np.arange(1, NUM_ITEMS + 1), size=n, replace=False) for n in LENGTHS]
    items = np.concatenate(seqs).astype(np.int64)
    return PreparedDataset(
        name="tiny-cut",
        user_ids=[f"u{u}" for u in range(len(LENGTHS))],
        item_ids=[""] + [f"i{i}" for i in range(1, NUM_ITEMS + 1)],
        offsets=np.concatenate([[0], np.cumsum(LENGTHS)]).astype(np.int64),
        items=items,
        timestamps=np.arange(len(items), dtype=np.int64),
        item_text=[""] + [f"{title(i)}; Genre{i % 4}" for i in range(1, NUM_ITEMS + 1)],
        item_titles=[""] + [title(i) for i in range(1, NUM_ITEMS + 1)],
        has_text=np.ones(NUM_ITEMS + 1, dtype=bool),
        max_seq_len=8,
    )


class HistoryNamesTeacher:
    """A teacher that names every item of the history it is given (all of it)."""

    uses_records = False
    label = "history-names"

    class Params(TeacherParams):
        pass

    def __init__(self, **_params):
        pass

    def teach(self, jobs, ctx):
        from slimkit.teachers.base import make_row

        rows = []
        for job in jobs:
            names = "; ".join(title(i) for i in ctx.dataset.train_items(job.user_index))
            text = f"Step 1: {names}\nStep 2: these.\nStep 3: more of these."
            rows.append(make_row(job, model=self.label, text=text, status="done", cost_usd=0.0,
                                 latency_s=0.0))
        return rows


def named(text: str | None) -> set[str]:
    """Titles a history-names rationale names (step 1)."""
    if not text:
        return set()
    first = text.split("\n", 1)[0].removeprefix("Step 1: ")
    return {t for t in first.split("; ") if t}


class NamingEncoder:
    """An encoder whose vector says which text it encodes (row -> text, zeros: none)."""

    dim = 4
    batch_size = 64

    def __init__(self):
        self.ids: dict[str, int] = {}

    def encode(self, texts, *args, **kwargs):
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for n, text in enumerate(texts):
            out[n] = [self.ids.setdefault(text, len(self.ids) + 1), 1, 0, 0]
        return out

    def text_of(self, vector) -> str | None:
        vector = np.asarray(vector)
        if not vector.any():
            return None
        by_id = {v: k for k, v in self.ids.items()}
        return by_id[round(float(vector[0]))]


@pytest.fixture
def history_teacher():
    registry("teachers").register("history-names", HistoryNamesTeacher)
    yield
    registry("teachers").unregister("history-names")


def make_spec(mode: str, train_mode: str = "auto", **train):
    return validate_spec({
        "teacher": {"kind": "history-names", "num_users": len(LENGTHS)},
        "prompt": {"max_items": 50, "rationale_cut": mode, "cut_items": CUT_ITEMS},
        "backbone": {"kind": "sasrec", "hidden_size": 16, "inner_size": 32, "num_layers": 1,
                     "num_heads": 1},
        "fusion": {"kind": "slim"},
        "train": {"mode": train_mode, "epochs": 1, "batch_size": 8, "patience": 1, **train},
        "eval": {"ks": [5, 10], "seeds": [3]},
    })


def table_of(tmp_path, spec, data):
    """The real teach stage, encode step and train-stage side info for ``spec``: (the
    per-user table's texts (None: no rationale), the side info, the teach folder)."""
    from slimkit.stages import train as train_stage
    from slimkit.stages.encode import encode_all
    from slimkit.stages.teach import teach

    out = tmp_path / "teach"
    out.mkdir()
    cache = StageCache(tmp_path / "cache")
    summary = teach(spec, data, out, records=cache.records, progress=False)
    assert summary["rationale_cut"] == spec.prompt.rationale_cut
    rows = read_rationales(out, done_only=True)
    separate = spec.prompt.rationale_cut == "separate"
    cut_rows = read_rationales(out, done_only=True, name=CUT_RATIONALES_FILE) if separate else None
    assert (out / CUT_RATIONALES_FILE).exists() == separate
    encoder = NamingEncoder()
    # The student writes its rationale from the same prompt history; the teacher's row
    # stands in for it here (the student's prompts are checked below).
    arrays, _ = encode_all(data, rows, rows, encoder, cut_teacher_records=cut_rows,
                           cut_student_records=cut_rows)
    vectors = {name[: -len(".npy")]: array for name, array in arrays.items()}
    side = train_stage.side_info(spec, vectors)
    table = side["rationale_vectors"].numpy()
    return [encoder.text_of(row) for row in table], side, out


class RecordingTrainer:
    """The real Trainer, recording (users, targets, where) at every loss."""

    @staticmethod
    def build(model, data, spec, rationale_rows):
        from slimkit.stages.train import options_from_spec
        from slimkit.training.fit import Trainer

        class Recording(Trainer):
            def _loss(self, seq, lengths, users, targets, where=None):
                self.seen.append((users.clone(), targets.clone(),
                                  None if where is None else where.clone()))
                return super()._loss(seq, lengths, users, targets, where)

        options, evaluation = options_from_spec(spec, "cpu", data.max_seq_len)
        trainer = Recording(model, data, options, evaluation, rationale_rows=rationale_rows)
        trainer.seen = []
        return trainer


def trained_pairs(tmp_path, mode: str, train_mode: str):
    """Every (table row, target) pair the trainer computed a loss on, and the table texts."""
    from slimkit.stages import train as train_stage

    data = tiny_data()
    spec = make_spec(mode, train_mode)
    texts, side, _ = table_of(tmp_path, spec, data)
    model = train_stage.recommender_for(spec, num_users=data.num_users, num_items=data.num_items,
                                        max_seq_len=data.max_seq_len, side=side)
    rows = train_stage.rationale_rows(spec, data)
    trainer = RecordingTrainer.build(model, data, spec, rows)
    trainer.fit()
    assert trainer.mode == train_mode
    pairs = []
    for users, targets, where in trainer.seen:
        if where is None:
            pairs += list(zip(users.tolist(), targets.tolist()))
        else:
            # Leakage-free: one table row per position; none: one per window, as before.
            assert users.shape == (targets.shape if rows is not None else targets.shape[:1])
            if users.dim() == 1:
                users = users.unsqueeze(1).expand_as(targets)
            pairs += list(zip(users[where].tolist(), targets[where].tolist()))
    assert len(pairs) == trainer.num_targets == sum(n - 3 for n in LENGTHS)
    return data, spec, texts, pairs, trainer


@pytest.mark.parametrize("mode", ["shared", "separate"])
@pytest.mark.parametrize("train_mode", ["causal", "per-prefix"])
def test_no_training_target_reads_a_rationale_that_names_it(tmp_path, history_teacher, mode,
                                                           train_mode):
    data, _spec, texts, pairs, _trainer = trained_pairs(tmp_path, mode, train_mode)
    cut = cut_positions(data.offsets, CUT_ITEMS)
    with_rationale = [(row, target) for row, target in pairs if texts[row] is not None]
    for row, target in with_rationale:
        assert title(target) not in named(texts[row]), (mode, train_mode, row, target)
    # Exactly the targets after each user's cut read a rationale (not a vacuous check).
    after_cut = sum(int(n - 2 - c) for n, c in zip(LENGTHS, cut))
    assert len(with_rationale) == after_cut > 0
    # ... and each reads its own user's rationale from the cut: sequence[:cut(u)].
    users = data.num_users
    for row, _target in with_rationale:
        u = row if mode == "shared" else row - users
        assert 0 <= u < users
        assert named(texts[row]) == {title(i) for i in data.sequence(u)[: cut[u]]}
    assert texts[-1] is None  # the row targets before a cut read: no rationale


@pytest.mark.parametrize("mode", ["shared", "separate", "none"])
def test_validation_and_test_read_the_intended_rationale(tmp_path, history_teacher, mode):
    data = tiny_data()
    spec = make_spec(mode)
    texts, _side, _ = table_of(tmp_path, spec, data)
    cut = cut_positions(data.offsets, CUT_ITEMS)
    from slimkit.training.samples import evaluation_samples

    for split in ("valid", "test"):  # evaluation reads row u of the table
        samples = evaluation_samples(data.offsets, data.items, data.max_seq_len, split)
        assert samples.users.tolist() == list(range(data.num_users))
    for u in range(data.num_users):
        seen = data.sequence(u)[: cut[u]] if mode == "shared" else data.train_items(u)
        assert named(texts[u]) == {title(i) for i in seen}
        assert title(data.valid_target(u)) not in named(texts[u])
        assert title(data.test_target(u)) not in named(texts[u])
    extra = {"none": 0, "shared": 1, "separate": data.num_users + 1}[mode]
    assert len(texts) == data.num_users + extra


@pytest.mark.parametrize("train_mode", ["causal", "per-prefix"])
def test_none_keeps_the_old_leaky_behaviour(tmp_path, history_teacher, train_mode):
    """rationale_cut: none: one rationale per user from sequence[:-2], read by every target
    (so it names every training target: the leak the other modes remove)."""
    from slimkit.stages import train as train_stage
    from slimkit.stages.teach import build_jobs

    data, spec, texts, pairs, _ = trained_pairs(tmp_path, "none", train_mode)
    assert train_stage.rationale_rows(spec, data) is None  # the trainer's old path
    assert views_of(data, spec.prompt).main is data
    for job in build_jobs(spec, data):  # prompts from the whole training sequence
        assert list(job.history) == [int(i) for i in data.train_items(job.user_index)]
    for row, target in pairs:
        assert row < data.num_users
        assert title(target) in named(texts[row])  # leaky, as before


def test_cut_positions_and_the_cut_view():
    data = tiny_data()
    cut = cut_positions(data.offsets, CUT_ITEMS)
    train_len = np.asarray(LENGTHS) - 2
    assert cut.tolist() == (train_len - np.minimum(CUT_ITEMS, train_len // 2)).tolist()
    assert cut[-1] == 1 and cut[0] == 2  # short users keep at least half for the rationale
    view = CutHistories(data, CUT_ITEMS)
    for u in range(data.num_users):
        assert view.train_items(u).tolist() == data.sequence(u)[: cut[u]].tolist()
        assert view.sequence(u).tolist() == data.sequence(u).tolist()
    assert view.num_users == data.num_users and view.item_titles is data.item_titles
    # Popularity (and so every count a prompt or the statistics teacher shows) from the
    # cut histories only: no user's items after their cut are counted.
    expected = np.bincount(np.concatenate([data.sequence(u)[: cut[u]] for u in range(data.num_users)]),
                           minlength=NUM_ITEMS + 1)
    assert training_popularity(view).tolist() == expected.tolist()
    whole = np.bincount(np.concatenate([data.train_items(u) for u in range(data.num_users)]),
                        minlength=NUM_ITEMS + 1)
    assert training_popularity(data).tolist() == whole.tolist()
    with pytest.raises(ValueError):
        rationale_views(data, "sometimes", 3)


def truncated(data: PreparedDataset, cut: np.ndarray) -> PreparedDataset:
    """The dataset with each user's sequence cut to ``sequence[:cut(u) + 2]``: it holds
    nothing of a user after the cut but two items standing in for validation and test."""
    seqs = [data.sequence(u)[: int(cut[u]) + 2] for u in range(data.num_users)]
    items = np.concatenate(seqs).astype(np.int64)
    return PreparedDataset(
        name="truncated", user_ids=data.user_ids, item_ids=data.item_ids,
        offsets=np.concatenate([[0], np.cumsum([len(q) for q in seqs])]).astype(np.int64),
        items=items, timestamps=np.arange(len(items), dtype=np.int64), item_text=data.item_text,
        item_titles=data.item_titles, has_text=data.has_text, max_seq_len=data.max_seq_len)


def test_prompts_and_their_facts_see_nothing_after_the_cut(history_teacher):
    """Grounded prompts (co-occurrence candidates, top categories, recent items) from the
    cut view equal those of a dataset that holds nothing after each user's cut."""
    from slimkit.stages.distill import student_messages
    from slimkit.stages.teach import build_jobs

    data = tiny_data()
    raw = {"teacher": {"kind": "history-names", "num_users": len(LENGTHS)},
           "prompt": {"max_items": 50, "teacher": "slim-cot-grounded",
                      "student": "slim-student-grounded"}}
    spec = validate_spec(raw)
    view = views_of(data, spec.prompt).main
    assert isinstance(view, CutHistories)  # shared is the default
    alone = truncated(data, view.rationale_lengths)
    none = validate_spec({**raw, "prompt": {**raw["prompt"], "rationale_cut": "none"}})
    for u in range(data.num_users):
        assert student_messages(spec, view, u) == student_messages(none, alone, u)
    jobs, alone_jobs = build_jobs(spec, view), build_jobs(none, alone)
    assert [j.messages for j in jobs] == [j.messages for j in alone_jobs]
    assert [j.history for j in jobs] == [j.history for j in alone_jobs]


def test_separate_teach_writes_both_sets_and_counts_them(tmp_path, history_teacher):
    data = tiny_data()
    spec = make_spec("separate")
    from slimkit.stages.teach import teach

    out = tmp_path / "teach"
    out.mkdir()
    summary = teach(spec, data, out, records=StageCache(tmp_path / "c").records, progress=False)
    assert summary["cut_rationales"] == {"users": data.num_users, "done": data.num_users,
                                         "well_formed": data.num_users}
    main = {r["user_index"]: r for r in read_rationales(out)}
    cut = {r["user_index"]: r for r in read_rationales(out, name=CUT_RATIONALES_FILE)}
    cuts = cut_positions(data.offsets, CUT_ITEMS)
    for u in range(data.num_users):
        assert named(main[u]["rationale"]) == {title(i) for i in data.train_items(u)}
        assert named(cut[u]["rationale"]) == {title(i) for i in data.sequence(u)[: cuts[u]]}


def test_stage_keys_change_with_the_cut(history_teacher):
    from slimkit.pipeline import stage_keys

    keys = {mode: stage_keys(make_spec(mode)) for mode in ("shared", "separate", "none")}
    for stage in ("teach", "distill", "encode", "train"):
        assert len({keys[m][stage] for m in keys}) == 3, stage
    assert len({keys[m]["data"] for m in keys}) == 1


@pytest.mark.parametrize("loss", ["bce", "sampled", "in-batch"])
def test_leakage_free_rows_train_with_every_loss(tmp_path, history_teacher, loss):
    """The per-position table rows of the causal mode reach every loss (the sampled ones
    score candidates only), and the trained model evaluates."""
    from slimkit.stages import train as train_stage
    from slimkit.training.fit import Trainer

    data = tiny_data()
    spec = make_spec("shared", "causal", loss=loss, sampled_negatives=8)
    _texts, side, _ = table_of(tmp_path, spec, data)
    model = train_stage.recommender_for(spec, num_users=data.num_users, num_items=data.num_items,
                                        max_seq_len=data.max_seq_len, side=side)
    options, evaluation = train_stage.options_from_spec(spec, "cpu", data.max_seq_len)
    trainer = Trainer(model, data, options, evaluation,
                      rationale_rows=train_stage.rationale_rows(spec, data))
    fit = trainer.fit()
    assert trainer.mode == "causal" and np.isfinite(fit.history[0]["loss"])
    assert 0.0 <= trainer.evaluate("test").metrics["hit@10"] <= 1.0
