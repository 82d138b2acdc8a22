import re

import pytest
import yaml

from soundtag.taxonomy import TaxonomyError, load_taxonomy, taxonomy_from_canonical, taxonomy_from_csv


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


URBAN = """
name: urban
threshold: 0.20
labels:
  - siren
  - name: dog barking
    threshold: 0.27
    parent: animal
  - name: background
    background: true
"""


def test_thresholds_background_and_parents_leave_the_hash_alone(tmp_path):
    tax = load_taxonomy(_write(tmp_path, URBAN))
    plain = load_taxonomy(_write(tmp_path, "name: urban\nlabels: [siren, dog barking, background]\n"))
    assert tax.content_hash == plain.content_hash
    policy = {node.label: (node.threshold, node.background, node.group, node.members) for node in tax.policy()}
    assert policy == {"siren": (0.2, False, False, ("siren",)), "dog barking": (0.27, False, False, ("dog barking",)),
                      "background": (0.2, True, False, ("background",)),
                      "animal": (0.2, False, True, ("dog barking",))}
    assert load_taxonomy(_write(tmp_path, yaml.safe_dump(tax.document()))) == tax


@pytest.mark.parametrize("text, message", [
    ("threshold: 1.5\nlabels: [rain]", "threshold 1.5 is not a cosine similarity: give one between -1 and 1"),
    ("labels: [{name: rain, threshold: -2}]", "threshold -2.0 is not a cosine"),
    ("labels: [{name: a, parent: b}, {name: b, parent: a}]", "parents form a cycle: a -> b -> a"),
    ("labels: [{name: a, parent: a}]", "parents form a cycle: a -> a"),
    ("labels: [rain, {name: quiet, background: true, threshold: 0.1}]",
     "background label 'quiet' cannot have a threshold or a parent"),
    ("labels: [{name: quiet, background: true, parent: calm}]", "background label 'quiet' cannot have a threshold"),
    ("labels: [{name: rain, treshold: 0.2}]", "unknown key 'treshold' in labels.0 \\(did you mean 'threshold'\\?\\)"),
    ("treshold: 0.2\nlabels: [rain]", "unknown key 'treshold' \\(did you mean 'threshold'\\?\\)"),
    ("labels: [{name: dog, parent: animal}]\ngroups: [{name: animal, threshold: 2}]", "threshold 2.0 is not a cosine"),
    ("labels: [{name: dog, parent: animal}]\ngroups: [{name: animal, treshold: 0.2}]",
     "unknown key 'treshold' in groups.0 \\(did you mean 'threshold'\\?\\)"),
    ("labels: [dog]\ngroups: [{name: animal, threshold: 0.2}]",
     "group 'animal' has no members: no label names it as its parent"),
    ("labels: [animal, {name: dog, parent: animal}]\ngroups: [{name: animal, threshold: 0.2}]",
     "group 'animal' is a label: give the label its threshold"),
])
def test_invalid_decision_policy_is_one_line(tmp_path, text, message):
    with pytest.raises(TaxonomyError, match="taxonomy.yaml: .*" + message) as info:
        load_taxonomy(_write(tmp_path, text))
    assert "\n" not in str(info.value)


def test_a_parent_that_is_a_label_rolls_up_itself_and_its_children(tmp_path):
    tax = load_taxonomy(_write(tmp_path, "labels: [animal, {name: dog, parent: animal}, {name: puppy, parent: dog}]"))
    assert {node.label: node.members for node in tax.policy()} == {
        "animal": ("animal", "dog", "puppy"), "dog": ("dog", "puppy"), "puppy": ("puppy",)}


def test_a_group_has_its_own_threshold_and_keeps_it_through_a_rewrite(tmp_path):
    tax = load_taxonomy(_write(tmp_path, URBAN + "  - name: cat\n    parent: animal\n"
                                          "groups:\n  - name: animal\n    threshold: 0.3\n"))
    assert {node.label: node.threshold for node in tax.policy()}["animal"] == 0.3
    assert tax.content_hash == load_taxonomy(_write(tmp_path, URBAN + "  - cat\n")).content_hash
    rewritten = tax.with_thresholds({"siren": 0.25})
    assert rewritten.document()["groups"] == [{"name": "animal", "threshold": 0.3}]
    assert load_taxonomy(_write(tmp_path, yaml.safe_dump(rewritten.document()))) == rewritten


def test_names_are_one_whatever_their_case_or_unicode_form(tmp_path):
    tax = load_taxonomy(_write(tmp_path, "labels: [animal, {name: dog, parent: Animal}, {name: cat, parent: ANIMAL}]"))
    assert {node.label: node.members for node in tax.policy()} == {
        "animal": ("animal", "dog", "cat"), "dog": ("dog",), "cat": ("cat",)}
    grouped = load_taxonomy(_write(tmp_path, "labels: [{name: dog, parent: Pets}, {name: cat, parent: pets}]\n"
                                             "groups: [{name: PETS, threshold: 0.2}]"))
    assert [(node.label, node.members, node.threshold) for node in grouped.policy() if node.group] == [
        ("Pets", ("dog", "cat"), 0.2)]
    composed, decomposed = "caf\u00e9", "cafe\u0301"
    with pytest.raises(TaxonomyError, match="label 'café' appears twice"):
        taxonomy_from_csv(f"{composed},{decomposed}")
    assert taxonomy_from_csv(decomposed).names == [composed]


@pytest.mark.parametrize("value", ["true", "yes", '"0.3"', "[0.3]"])
def test_a_threshold_that_is_not_a_number_is_refused_in_one_line(tmp_path, value):
    for text in (f"threshold: {value}\nlabels: [rain]", f"labels: [{{name: rain, threshold: {value}}}]",
                 f"labels: [{{name: dog, parent: animal}}]\ngroups: [{{name: animal, threshold: {value}}}]"):
        with pytest.raises(TaxonomyError, match="is not a number") as info:
            load_taxonomy(_write(tmp_path, text))
        assert "\n" not in str(info.value)


@pytest.mark.parametrize("text, shown", [
    ("labels: [\"rain\\u200b\", rain]", r"label 'rain\u200b' holds the invisible or control character U+200B"),
    ("labels: [\"\\e[31mrain\"]", r"label '\x1b[31mrain' holds the invisible or control character U+001B"),
    ("labels: [{name: dog, parent: \"anim\\u202eal\"}]", r"parent 'anim\u202eal' holds the invisible"),
    ("name: \"urban\\a\"\nlabels: [rain]", r"taxonomy 'urban\x07' holds the invisible"),
])
def test_a_name_with_a_control_or_zero_width_character_is_refused_and_shown_escaped(tmp_path, text, shown):
    with pytest.raises(TaxonomyError) as raised:
        load_taxonomy(_write(tmp_path, text))
    assert shown in str(raised.value) and str(raised.value).isprintable()
    with pytest.raises(TaxonomyError, match="U\\+200B"):
        taxonomy_from_csv("dog,rain\u200b")


def test_a_list_item_indented_under_the_one_above_is_refused_not_joined_into_one_label(tmp_path):
    with pytest.raises(TaxonomyError, match="label 'siren - rain' looks like two list items joined"):
        load_taxonomy(_write(tmp_path, "labels:\n  - siren\n   - rain\n"))
    assert load_taxonomy(_write(tmp_path, "labels:\n  - {name: 'siren - rain'}\n  - wind\n")).names == \
        ["siren - rain", "wind"]


def test_a_taxonomys_hash_stays_what_stored_rows_know_it_by():
    """Labelings, embeddings and thresholds are keyed by the hash: a new canonical form would orphan them."""
    urban = taxonomy_from_canonical({"name": "urban", "template": "the sound of {}",
                                     "labels": [{"name": "siren"}, {"name": "dog", "prompts": ["a dog barking"]}]})
    assert urban.content_hash == "e1da2a78c799f64d246cb4e14c228fb8f68b79a0fbccf2f179af8cceeb524e6b"
    unnamed = taxonomy_from_csv("dog,rain")
    assert (unnamed.name, unnamed.content_hash[:8]) == ("labels-ee0594fc", "c0aeceb6")
    assert taxonomy_from_csv("dog,rain", name="mine").name == "mine"


def test_the_written_document_reads_back_as_the_same_taxonomy(tmp_path):
    tax = taxonomy_from_canonical({
        "name": "urban", "template": "the sound of {}", "threshold": 0.2,
        "labels": [{"name": "siren", "threshold": 0.3}, {"name": "dog", "prompts": ["a dog barking"], "parent": "animal"},
                   {"name": "cat", "parent": "pets"}, {"name": "noise", "background": True}],
        "groups": [{"name": "animal", "threshold": 0.25}, {"name": "pets"}]})
    doc = tax.document()
    assert doc["groups"] == [{"name": "animal", "threshold": 0.25}, {"name": "pets"}]
    assert doc["labels"][1] == {"name": "dog", "prompts": ["a dog barking"], "parent": "animal"}
    again = load_taxonomy(_write(tmp_path, yaml.safe_dump(doc)))
    assert again == tax and again.content_hash == tax.content_hash


def test_new_thresholds_replace_only_the_labels_named_and_keep_the_hash():
    tax = taxonomy_from_canonical({"name": "t", "labels": [{"name": "dog", "threshold": 0.1}, {"name": "rain"}]})
    changed = tax.with_thresholds({"rain": 0.4})
    assert [lb.threshold for lb in changed.labels] == [0.1, 0.4]
    assert changed.content_hash == tax.content_hash and [lb.threshold for lb in tax.labels] == [0.1, None]


def test_the_policy_names_each_labels_parent():
    tax = taxonomy_from_canonical({"name": "t", "labels": [{"name": "dog", "parent": "animal"}, {"name": "animal"}]})
    assert [(p.label, p.parent, p.members) for p in tax.policy()] == [("dog", "animal", ("dog",)),
                                                                     ("animal", None, ("animal", "dog"))]


def test_thresholds_of_minus_one_and_one_are_cosines():
    tax = taxonomy_from_canonical({"name": "t", "threshold": -1.0, "labels": [{"name": "dog", "threshold": 1.0}],
                                   "groups": []})
    assert (tax.threshold, tax.labels[0].threshold) == (-1.0, 1.0)


def test_an_unknown_key_in_a_group_lists_the_keys_of_a_group():
    with pytest.raises(TaxonomyError, match=re.escape(
            "t: unknown key 'colour' in groups.0 (valid keys: name, threshold)")):
        taxonomy_from_canonical({"name": "t", "labels": [{"name": "dog", "parent": "g"}],
                                 "groups": [{"name": "g", "colour": "red"}]})


def test_a_stored_taxonomy_without_a_name_is_named_taxonomy_in_its_error():
    with pytest.raises(TaxonomyError, match=r"^taxonomy: missing key 'name'$"):
        taxonomy_from_canonical({"labels": ["dog"]})
