import re

import pytest

from soundtag.taxonomy import TaxonomyError, load_taxonomy, taxonomy_from_csv


def _write(tmp_path, text):
    path = tmp_path / "taxonomy.yaml"
    path.write_text(text)
    return path


def test_yaml_taxonomy_with_template_and_multi_prompt_labels(tmp_path):
    tax = load_taxonomy(_write(tmp_path, """
name: urban
template: "the sound of {}"
labels:
  - siren
  - name: dog
    prompts: ["a dog barking", "a dog growling"]
"""))
    assert tax.name == "urban" and tax.names == ["siren", "dog"]
    assert tax.prompts() == [["the sound of siren"], ["a dog barking", "a dog growling"]]


def test_plain_list_and_mapping_forms(tmp_path):
    assert load_taxonomy(_write(tmp_path, "- rain\n- wind\n")).names == ["rain", "wind"]
    tax = load_taxonomy(_write(tmp_path, "labels:\n  rain:\n  dog: [a dog barking]\n"))
    assert tax.prompts() == [["This is a sound of rain."], ["a dog barking"]]
    assert tax.name == "taxonomy"


@pytest.mark.parametrize("text, message", [
    ("labels: []", "it has no labels"),
    ("labels: [rain, Rain]", "label 'Rain' appears twice"),
    ("template: 'a sound'\nlabels: [rain]", "must hold exactly one '{}' where the label goes"),
    ("template: 'a {} and {}'\nlabels: [rain]", "must hold exactly one '{}' where the label goes"),
    ("lables: [rain]", "missing key 'labels'; unknown key 'lables' (did you mean 'labels'?)"),
    ("labels: [{name: rain, promts: [wet]}]", "unknown key 'promts' in labels.0 (did you mean 'prompts'?)"),
    ("labels: ['  ']", "a label name is empty"),
    ("labels: [rain\n", "not valid YAML"),
    ("42", "expected a mapping"),
])
def test_invalid_taxonomy_says_what_is_wrong(tmp_path, text, message):
    with pytest.raises(TaxonomyError, match="taxonomy.yaml: .*" + re.escape(message)):
        load_taxonomy(_write(tmp_path, text))


def test_missing_file_is_one_line(tmp_path):
    with pytest.raises(TaxonomyError, match="nope.yaml: No such file or directory"):
        load_taxonomy(tmp_path / "nope.yaml")


def test_csv_labels_and_hash_identifies_content():
    a = taxonomy_from_csv("dog barking, rain,siren")
    assert a.names == ["dog barking", "rain", "siren"]
    assert a.content_hash == taxonomy_from_csv("dog barking,rain,siren").content_hash
    assert a.content_hash != taxonomy_from_csv("rain,dog barking,siren").content_hash
    with pytest.raises(TaxonomyError, match="--labels: it has no labels"):
        taxonomy_from_csv(" , ")
