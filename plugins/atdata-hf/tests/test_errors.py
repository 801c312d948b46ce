"""Input atdata-hf cannot map is refused before anything is written, with what to do instead."""

from __future__ import annotations

import pytest
from datasets import Dataset, DatasetDict, Features, Json, List, Translation, Value

from atdata_hf import UnsupportedFeature, from_hf, sample_type_from_features, to_hf


@pytest.mark.parametrize(
    ("feature", "named"),
    [
        (Value("timestamp[s]"), r"Value\('timestamp\[s\]'\)"),
        (Value("date32"), r"Value\('date32'\)"),
        (Translation(languages=["en", "fr"]), "Translation"),
        (Json(), "Json"),
        (List(Json()), "Json"),
    ],
)
def test_an_unsupported_feature_is_named_with_what_to_do(feature, named):
    with pytest.raises(UnsupportedFeature, match=named) as caught:
        sample_type_from_features(Features({"ok": Value("int32"), "when": feature}))
    message = str(caught.value)
    assert "when" in message
    assert "cast_column('when'" in message or "remove_columns(['when'])" in message


def test_nothing_is_written_when_a_feature_is_unsupported(tmp_path):
    hf = Dataset.from_dict({"t": [{"en": "hi", "fr": "salut"}]}, features=Features({"t": Translation(languages=["en", "fr"])}))
    with pytest.raises(UnsupportedFeature, match="Translation"):
        from_hf(hf, str(tmp_path / "x-%03d.tar"), progress=False)
    assert list(tmp_path.iterdir()) == []


def test_a_column_name_that_is_not_an_identifier_asks_for_a_rename():
    with pytest.raises(UnsupportedFeature, match=r"'image-id'.*rename_column\('image-id', 'new_name'\)"):
        sample_type_from_features(Features({"image-id": Value("int64")}))
    with pytest.raises(UnsupportedFeature, match="'class'"):
        sample_type_from_features(Features({"class": Value("int64")}))


def test_a_dataset_dict_asks_for_one_split(tmp_path):
    splits = DatasetDict({"train": Dataset.from_dict({"n": [1]}), "test": Dataset.from_dict({"n": [2]})})
    with pytest.raises(TypeError, match=r"\['test', 'train'\].*hf_dataset\['train'\]"):
        from_hf(splits, str(tmp_path / "x-%03d.tar"), progress=False)


def test_publishing_without_a_schema_id_is_refused_before_writing(tmp_path):
    with pytest.raises(ValueError, match="schema_id="):
        from_hf(Dataset.from_dict({"n": [1]}), str(tmp_path / "x-%03d.tar"), client=object(), dataset_name="n",
                progress=False)
    assert list(tmp_path.iterdir()) == []


def test_a_dict_sample_dataset_asks_for_a_sample_type(tmp_path):
    import atdata_core

    done = from_hf(Dataset.from_dict({"n": [1, 2]}), str(tmp_path / "x-%03d.tar"), progress=False)
    untyped = atdata_core.Dataset(str(tmp_path / "x-*.tar"))
    with pytest.raises(atdata_core.errors.SampleTypeError, match="DictSample.*features="):
        to_hf(untyped, cache_dir=str(tmp_path / "cache"))
    # with features given, the fields are taken by name, from typed samples and from DictSamples alike
    given = Features({"n": Value("int16")})
    assert to_hf(done.dataset, features=given, cache_dir=str(tmp_path / "c2"))["n"] == [1, 2]
    exported = to_hf(untyped, features=given, cache_dir=str(tmp_path / "c3"))
    assert exported["n"] == [1, 2] and exported.features == given


def test_a_class_of_your_own_must_find_its_fields_among_the_columns(tmp_path):
    import atdata_core

    @atdata_core.packable
    class Row:
        n: int
        caption: str

    with pytest.raises(atdata_core.errors.SampleTypeError, match=r"Row has fields .*\['caption'\].*columns: \['n'\]"):
        from_hf(Dataset.from_dict({"n": [1]}), str(tmp_path / "x-%03d.tar"), sample_type=Row, progress=False)

    @atdata_core.packable
    class Narrow:
        n: int

    done = from_hf(Dataset.from_dict({"n": [1, 2], "extra": ["a", "b"]}), str(tmp_path / "y-%03d.tar"),
                   sample_type=Narrow, progress=False)
    assert [s.n for s in done.dataset] == [1, 2]
