"""Study files and seed ranges (`common.studies`)."""

import pytest

from common import runner, studies
from scripts import sweep


def test_parse_seeds_ranges_and_lists():
    assert studies.parse_seeds("1-3") == [1, 2, 3]
    assert studies.parse_seeds("1,4") == [1, 4]
    assert studies.parse_seeds("2") == [2]
    assert studies.parse_seeds("1-2,5, 7-8") == [1, 2, 5, 7, 8]


@pytest.mark.parametrize("text, part", [("1-x", "1-x"), ("a", "a"), ("1,,2", ""), ("3-1", "3-1"), ("-1", "-1")])
def test_parse_seeds_names_a_bad_part(text, part):
    with pytest.raises(ValueError) as err:
        studies.parse_seeds(text)
    assert repr(text) in str(err.value) and repr(part) in str(err.value)


def test_old_names_are_the_same_functions():
    assert sweep.parse_seeds is studies.parse_seeds
    for name in ("read_study", "apply_study", "study_entries", "finished_references"):
        assert getattr(runner, name) is getattr(studies, name)


def test_study_entries_keep_the_file_order_and_benchmark_restrictions():
    spec = {"methods": {"b": {}, "a": {"benchmarks": ["pmnist"]}, "c": None}}
    assert studies.study_entries(spec, "pmnist") == ["b", "a", "c"]
    assert studies.study_entries(spec, "scifar100") == ["b", "c"]
