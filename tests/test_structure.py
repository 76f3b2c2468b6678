"""The repository's shape: short files, and who may import what (paper folders and tables read studies through
`common.studies`, never through the sweep script or the run command)."""

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PAPER_FOLDERS = ("common", "baselines", "adahat", "fg_adahat", "amnesiachat")
MAX_LINES = 400


def project_python_files() -> list[Path]:
    """Every .py file of the project outside tests/ (not the virtual environment, data or run folders)."""
    skip = {"tests", "data", "runs", "runs_quick", "results"}  # top-level folders
    files = []
    for path in REPO.rglob("*.py"):
        folders = path.relative_to(REPO).parts[:-1]
        if not (folders and folders[0] in skip) and not any(f.startswith(".") for f in folders):
            files.append(path)
    return files


def test_no_python_file_outside_tests_is_longer_than_400_lines():
    files = project_python_files()
    assert len(files) > 50
    too_long = {str(p.relative_to(REPO)): n for p in files if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert too_long == {}


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
