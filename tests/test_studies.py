"""Study files and seed ranges (`common.studies`), and who may import what: paper folders and tables read studies
through `common.studies`, never through the sweep script or the run command."""

import ast
from pathlib import Path

import pytest

from common import runner, studies
from scripts import sweep

REPO = Path(__file__).resolve().parent.parent
PAPER_FOLDERS = ("common", "baselines", "adahat", "fg_adahat", "amnesiachat")


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


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_paper_folders_do_not_import_scripts():
    offenders = [str(path.relative_to(REPO)) for folder in PAPER_FOLDERS for path in (REPO / folder).rglob("*.py")
                 if any(name == "scripts" or name.startswith("scripts.") for name in imported_modules(path))]
    assert offenders == []


def test_tables_do_not_import_the_run_command():
    assert "common.runner" not in imported_modules(REPO / "common" / "tables.py")
    assert "common.runner" not in imported_modules(REPO / "common" / "studies.py")
