"""Distillation quality metrics: ROUGE-L (rouge-score), format share, cosine."""

from __future__ import annotations

import numpy as np
import pytest

from slimkit.students.quality import (
    format_share,
    mean_cosine,
    quality_report,
    rouge_l,
    words,
)


def test_rouge_l_by_hand():
    # candidate 4 words, reference 5 words, LCS "the cat on mat" = 4
    cand, ref = "the cat on mat", "the cat sat on mat"
    p, r = 4 / 4, 4 / 5
    assert rouge_l(cand, ref) == pytest.approx(2 * p * r / (p + r))
    assert rouge_l("", ref) == 0.0
    assert rouge_l("dog", ref) == 0.0
    assert rouge_l(ref, ref) == pytest.approx(1.0)
    assert words("Step 1: **Comedy**, Drama!") == ["step", "1", "comedy", "drama"]


def test_format_share_uses_the_shared_parser():
    good = "Step 1: likes comedy. Step 2: Comedy. Step 3: Movie 1."
    assert format_share([good, "just some words", good, ""]) == 0.5
    assert format_share([]) is None


def test_mean_cosine():
    a = np.array([[1.0, 0.0], [0.0, 2.0], [0.0, 0.0]])
    b = np.array([[2.0, 0.0], [0.0, -1.0], [1.0, 1.0]])
    assert mean_cosine(a, b) == pytest.approx((1 - 1 + 0) / 3)


def test_quality_report_compares_base_and_fine_tuned():
    teacher = ["Step 1: likes comedy. Step 2: Comedy. Step 3: Movie 1."] * 2
    fine = ["Step 1: likes comedy. Step 2: Comedy. Step 3: Movie 2."] * 2
    base = ["I like turtles", "Sure! Here is a list"]

    def encode(texts):  # bag of words over a tiny vocabulary: a real encoder is tested in the stage test
        vocab = sorted({w for t in texts for w in words(t)})
        return np.array([[words(t).count(v) for v in vocab] for t in texts], dtype=float)

    report = quality_report(teacher, base, fine, encode, encoder="bow")
    assert report["users"] == 2 and report["teacher_format_share"] == 1.0
    assert report["fine_tuned"]["format_share"] == 1.0 and report["base"]["format_share"] == 0.0
    assert report["fine_tuned"]["rouge_l"] > report["base"]["rouge_l"]
    assert report["fine_tuned"]["cosine"] > report["base"]["cosine"]
