"""The pipeline spec: strict validation, paths and suggestions, overrides, schema."""

from __future__ import annotations

import pytest
import yaml
from helpers import REPO

from slimkit.errors import ConfigError
from slimkit.spec import (
    SECTION_ORDER,
    apply_overrides,
    load_spec,
    spec_json_schema,
    validate_spec,
)

EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))


def test_defaults_validate_and_resolve_every_section():
    spec = validate_spec({})
    assert list(spec.to_dict()) == list(SECTION_ORDER)
    assert spec.backbone.kind == "sasrec"
    assert spec.eval.ks == [5, 10, 20]


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_every_example_config_validates(path):
    spec = load_spec(path)
    # Sections appear in the canonical order in the file too.
    raw = yaml.safe_load(path.read_text())
    order = [s for s in SECTION_ORDER if s in raw]
    assert list(raw) == order, f"{path.name}: sections out of order"
    assert spec.source == str(path)


def test_examples_exist():
    assert any(p.name == "quickstart.yaml" for p in EXAMPLES)


def problems_of(raw) -> list[str]:
    with pytest.raises(ConfigError) as info:
        validate_spec(raw)
    return info.value.problems


def test_typo_in_key_names_path_and_suggests():
    (problem,) = problems_of({"backbone": {"kind": "sasrec", "hiden_size": 8}})
    assert problem.startswith("backbone.hiden_size")
    assert "Did you mean 'hidden_size'" in problem


def test_unknown_kind_suggests_closest():
    (problem,) = problems_of({"backbone": {"kind": "sasrek"}})
    assert problem.startswith("backbone.kind")
    assert "Did you mean 'sasrec'" in problem


def test_unknown_section_is_an_error():
    (problem,) = problems_of({"trian": {"epochs": 1}})
    assert "Did you mean 'train'" in problem


def test_every_problem_is_collected_at_once():
    problems = problems_of(
        {
            "backbone": {"kind": "sasrec", "hiden_size": 8},
            "train": {"epochz": 1, "lr": -1},
            "eval": {"ks": [0]},
            "fusion": {"kind": "nope"},
        }
    )
    paths = {p.split(":")[0] for p in problems}
    assert {"backbone.hiden_size", "train.epochz", "train.lr", "eval.ks", "fusion.kind"} <= paths


def test_component_params_validated_by_their_own_model():
    problems = problems_of({"backbone": {"kind": "gru4rec", "num_heads": 2}})
    assert problems[0].startswith("backbone.num_heads")  # a SASRec key is not a GRU4Rec key


def test_valid_metric_cutoff_must_be_evaluated():
    problems = problems_of({"train": {"valid_metric": "ndcg@50"}})
    assert problems[0].startswith("train.valid_metric")


def test_unknown_prompt_template():
    (problem,) = problems_of({"prompt": {"teacher": "slim-cott"}})
    assert "Did you mean 'slim-cot'" in problem


def test_overrides_parse_yaml_values():
    raw = apply_overrides({"train": {"epochs": 3}}, ["train.epochs=5", "eval.ks=[10, 20]", "backbone.kind=gru4rec"])
    assert raw == {"train": {"epochs": 5}, "eval": {"ks": [10, 20]}, "backbone": {"kind": "gru4rec"}}
    spec = validate_spec(raw)
    assert spec.train.epochs == 5 and spec.backbone.kind == "gru4rec"


def test_override_without_equals_is_an_error():
    with pytest.raises(ConfigError):
        apply_overrides({}, ["train.epochs"])


def test_bad_yaml_names_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  epochs: [1\n")
    with pytest.raises(ConfigError) as info:
        load_spec(bad)
    assert "line" in info.value.message


def test_missing_file():
    with pytest.raises(ConfigError, match="not found"):
        load_spec("does/not/exist.yaml")


def test_round_trip_through_yaml():
    spec = validate_spec({"backbone": {"kind": "sasrec", "hidden_size": 32}})
    again = validate_spec(yaml.safe_load(spec.to_yaml()))
    assert again.to_dict() == spec.to_dict()


def test_schema_has_every_section_and_field_help():
    schema = spec_json_schema()
    assert list(schema["properties"]) == list(SECTION_ORDER)
    backbones = schema["properties"]["backbone"]["oneOf"]
    sasrec = next(s for s in backbones if s["properties"]["kind"]["const"] == "sasrec")
    assert sasrec["properties"]["hidden_size"]["description"]
    assert sasrec["additionalProperties"] is False


def test_config_reference_doc_is_generated_from_the_schema(monkeypatch):
    from slimkit.registry import reset_registries
    from slimkit.spec import spec_reference_markdown

    monkeypatch.setenv("SLIMKIT_LOAD_PLUGINS", "")
    reset_registries()
    try:
        doc = (REPO / "docs" / "config-reference.md").read_text()
        assert spec_reference_markdown() in doc, "regenerate docs/config-reference.md"
    finally:
        reset_registries()
