"""The documentation stands on its own: every configuration key is explained in docs/config.md, every repository
path and docs section the READMEs, docs/ and code cite exists, and nothing cites files outside the repository."""

from __future__ import annotations

import importlib
import os
import re
import unicodedata
from pathlib import Path

import pytest
import yaml

from common.config import ENGINE_KEYS

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
SKIP_DIRS = {".git", ".venv", "data", "runs", "runs_quick", "tests"}  # top-level folders that are not the product
SKIP_ANYWHERE = {"__pycache__", ".pytest_cache", ".git"}
# folders the code writes into that need not exist in a fresh clone
GENERATED = ("results/quick", "runs", "runs_quick", "data")


# ----- helpers ------------------------------------------------------------------------------------------------------
def repo_files(*suffixes: str) -> list[Path]:
    """Files of the repository with one of `suffixes`, outside tests/, data, run folders and the environment."""
    out = []
    for folder, dirs, names in os.walk(ROOT):
        here = Path(folder)
        dirs[:] = [d for d in dirs if d not in SKIP_ANYWHERE and not (here == ROOT and d in SKIP_DIRS)]
        out += [here / name for name in names if Path(name).suffix in suffixes]
    return sorted(out)


def method_packages() -> list[str]:
    """Top-level packages with a method registry (`METHODS`) and a `run.py`."""
    return sorted(p.parent.name for p in ROOT.glob("*/run.py") if (p.parent / "__init__.py").exists()
                  and p.parent.name not in SKIP_DIRS)


def registry_hparams() -> dict[str, set[str]]:
    """hyperparameter -> the registered methods that have it, over every package's `METHODS`."""
    out: dict[str, set[str]] = {}
    for package in method_packages():
        methods = getattr(importlib.import_module(package), "METHODS", {})
        for name, cls in methods.items():
            for key in cls.all_hparams():
                out.setdefault(key, set()).add(f"{package}:{name}")
    return out


def yaml_keys(data, out: set[str]) -> set[str]:
    """Every mapping key at any depth of a loaded YAML document."""
    if isinstance(data, dict):
        for key, value in data.items():
            out.add(str(key))
            yaml_keys(value, out)
    elif isinstance(data, list):
        for value in data:
            yaml_keys(value, out)
    return out


def config_yaml_files() -> list[Path]:
    return sorted(set(ROOT.glob("*/configs/**/*.yaml")) | set(ROOT.glob("common/configs/**/*.yaml")))


def documented_keys(text: str) -> set[str]:
    """Every `code span` of a markdown text (a span may run over a line break, as in markdown)."""
    return {" ".join(span.split()) for span in re.findall(r"`([^`]+)`", text)}


def missing_keys(keys: dict[str, str], documented: set[str]) -> list[str]:
    return sorted(f"{key} ({where})" for key, where in keys.items() if key not in documented)


def all_config_keys() -> dict[str, str]:
    """key -> where it comes from (engine, a method, a YAML file)."""
    keys = {key: "ENGINE_KEYS" for key in ENGINE_KEYS}
    for key, methods in registry_hparams().items():
        keys.setdefault(key, "hyperparameter of " + ", ".join(sorted(methods)[:3]))
    for path in config_yaml_files():
        for key in yaml_keys(yaml.safe_load(path.read_text()) or {}, set()):
            keys.setdefault(key, str(path.relative_to(ROOT)))
    return keys


def slug(heading: str) -> str:
    """GitHub's anchor of a markdown heading: lower case, punctuation dropped, spaces to hyphens."""
    text = heading.strip().lower()
    text = "".join(ch for ch in text if ch in " -_" or unicodedata.category(ch)[0] in "LN")
    return text.replace(" ", "-")


def anchors(md: Path) -> set[str]:
    """Anchors of every heading of a markdown file (duplicates numbered as GitHub does)."""
    seen: dict[str, int] = {}
    out = set()
    in_code = False
    for line in md.read_text().splitlines():
        if line.startswith("```"):
            in_code = not in_code
        match = re.match(r"(#{1,6})\s+(.*)", line)
        if in_code or not match:
            continue
        base = slug(match.group(2))
        n = seen.get(base, 0)
        out.add(base if n == 0 else f"{base}-{n}")
        seen[base] = n + 1
    return out


def readme_and_docs() -> list[Path]:
    return sorted({ROOT / "README.md", *ROOT.glob("*/README.md"), *DOCS.glob("*.md")})


TOP_LEVEL = {p.name for p in ROOT.iterdir() if p.name not in SKIP_DIRS} - {"data"}


def cited_paths(md: Path) -> list[tuple[str, Path, str]]:
    """(as written, resolved path, anchor) of every markdown link to a local file and of every backticked repository
    path (first component a top-level entry of the repository) in `md`."""
    text = md.read_text()
    out = []
    for target in re.findall(r"\[[^\]]*\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        path, _, anchor = target.partition("#")
        out.append((target, (md.parent / path).resolve(), anchor))
    for span in documented_keys(text):
        token = span.split("::")[0]
        if not re.fullmatch(r"[\w.\-/]+(#[\w\-]+)?", token) or "/" not in token:
            continue
        path, _, anchor = token.partition("#")
        if path.split("/")[0] not in TOP_LEVEL | {p.name for p in md.parent.iterdir()}:
            continue
        if path.rstrip("/").startswith(GENERATED):
            continue
        beside = (md.parent / path).resolve()  # a README may cite paths relative to its own folder
        out.append((span, beside if beside.exists() else (ROOT / path).resolve(), anchor))
    return out


# ----- (a) every configuration key is documented --------------------------------------------------------------------
def test_config_keys_are_documented():
    keys = all_config_keys()
    assert len(keys) > 50 and "s_max" in keys and "alpha" in keys  # the collection itself works
    missing = missing_keys(keys, documented_keys((DOCS / "config.md").read_text()))
    assert not missing, "keys without an entry in docs/config.md (write them as `key`):\n  " + "\n  ".join(missing)


def test_missing_key_is_reported():
    documented = documented_keys("| `s_max` | 400 | the scale |")
    assert missing_keys({"s_max": "hat", "brand_new_key": "x.yaml"}, documented) == ["brand_new_key (x.yaml)"]


# ----- (b) every cited path and docs section exists ------------------------------------------------------------------
def shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else path.name


def broken_citations(files: list[Path]) -> list[str]:
    broken = []
    for md in files:
        for written, path, anchor in cited_paths(md):
            where = f"{shown(md)}: {written}"
            if not path.exists():
                broken.append(where + " (no such path)")
            elif anchor and path.suffix == ".md" and anchor not in anchors(path):
                broken.append(where + f" (no heading with anchor #{anchor})")
    return broken


def test_readme_and_docs_citations_exist():
    files = readme_and_docs()
    assert ROOT / "README.md" in files and DOCS / "config.md" in files
    broken = broken_citations(files)
    assert not broken, "cited paths or sections that do not exist:\n  " + "\n  ".join(broken)


def test_broken_citation_is_caught(tmp_path):
    hat = DOCS / "hat.md"
    page = tmp_path / "probe.md"
    page.write_text(f"See [HAT]({hat}#no-such-section), `common/no_such_file.py`, [ok]({hat}#gradient-adjustment) "
                    "and `common/hat.py::mask_sparsity`.\n")
    broken = broken_citations([page])
    assert any("no-such-section" in b for b in broken) and any("no_such_file" in b for b in broken)
    assert len(broken) == 2, broken


def test_docs_sections_cited_in_code_exist():
    """Code, YAML and markdown cite docs sections as `docs/<page>.md#<anchor>`: each page and anchor must exist."""
    broken = []
    for path in repo_files(".py", ".md", ".yaml", ".sh"):
        for page, anchor in re.findall(r"docs/([\w\-]+\.md)(?:#([\w\-]+))?", path.read_text()):
            target = DOCS / page
            if not target.exists():
                broken.append(f"{path.relative_to(ROOT)}: docs/{page}")
            elif anchor and anchor not in anchors(target):
                broken.append(f"{path.relative_to(ROOT)}: docs/{page}#{anchor}")
    assert not broken, "docs citations without a target:\n  " + "\n  ".join(sorted(set(broken)))


def test_slug_matches_github():
    assert slug("Embedding-gradient compensation") == "embedding-gradient-compensation"
    assert slug("batch_norm and weight_decay") == "batch_norm-and-weight_decay"
    assert slug("Dark experience replay (DER, DER++)") == "dark-experience-replay-der-der"
    assert slug("2024 code and current code") == "2024-code-and-current-code"


# ----- (c) nothing cites files outside the repository ---------------------------------------------------------------
OUTSIDE = [
    (re.compile(r"(?<![\w/.])spec/"), "spec/"),
    (re.compile(r"(?<![\w/.])tools/floor"), "tools/floor"),
    (re.compile(r"\.\./shared"), "../shared"),
    (re.compile(r"(?<![\w/.])targets/"), "targets/ (outside adahat/ and fg_adahat/)"),
    (re.compile(r"(?<![\w/.])tools/"), "tools/"),
]


def outside_citations(files: list[Path]) -> list[str]:
    found = []
    for path in files:
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            for pattern, what in OUTSIDE:
                if pattern.search(line):
                    found.append(f"{path.relative_to(ROOT)}:{number}: {what}: {line.strip()[:100]}")
    return found


def test_no_citations_outside_the_repository():
    files = repo_files(".py", ".md", ".yaml")
    assert any(p.name == "hat.py" for p in files)
    found = outside_citations(files)
    assert not found, "citations of files outside the repository:\n  " + "\n  ".join(found)


@pytest.mark.parametrize("line, caught", [
    ("see `spec/algorithms.md` §3", True),
    ("# Permuted MNIST (spec/experiments.md 1.1)", True),
    ("the bare loop of tools/floor_pmnist.py", True),
    ("path = '../shared/tools'", True),
    ("published data (`targets/capacity.csv`)", True),
    ("fg_adahat/targets/table1.csv and adahat/targets/", False),
    ("inspect/ and respec/ are fine", False),
])
def test_outside_citation_patterns(line, caught):
    assert any(pattern.search(line) for pattern, _ in OUTSIDE) is caught
