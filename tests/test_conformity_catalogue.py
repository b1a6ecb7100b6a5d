"""The conformity dossier (docs/conformity.md) is generated from the measure catalogue, and every measure
points at code and tests that exist and run (CNIL: demonstrate compliance at any time)."""

from __future__ import annotations

import ast
import importlib.util
from functools import cache
from pathlib import Path

import pytest
from django.conf import settings

from dpi.compliance.conformity import CATALOGUE, SOURCES, catalogue_markdown

ROOT = Path(settings.BASE_DIR)
SKIP_NAMES = {"skip", "skipif", "xfail"}


@cache
def _tree(path: str) -> ast.Module:
    return ast.parse((ROOT / path).read_text(), filename=path)


def _marks(node: ast.AST) -> set[str]:
    """Names of pytest marks or calls found in decorators / a pytestmark assignment."""
    names = set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.Attribute) and sub.attr in SKIP_NAMES:
            names.add(sub.attr)
    return names


def _function(tree: ast.Module, name: str) -> ast.FunctionDef | None:
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == name:
            return node
    return None


def _problems_of_test(node_id: str) -> list[str]:
    path, _, name = node_id.partition("::")
    if not (ROOT / path).is_file():
        return [f"{node_id}: no such file"]
    tree = _tree(path)
    problems = []
    for stmt in tree.body:  # module-level skip: pytestmark = pytest.mark.skip..., or pytest.skip(...) at import
        if isinstance(stmt, ast.Assign) and any(getattr(t, "id", "") == "pytestmark" for t in stmt.targets):
            if _marks(stmt.value):
                problems.append(f"{node_id}: the module is marked skip/xfail")
        if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call) and _marks(stmt.value.func):
            problems.append(f"{node_id}: the module calls pytest.skip")
    if not name:
        return problems + [f"{node_id}: name a test function (file::test_name)"]
    func = _function(tree, name)
    if func is None:
        return problems + [f"{node_id}: no test function {name!r} in {path}"]
    if any(_marks(d) for d in func.decorator_list):
        problems.append(f"{node_id}: marked skip/skipif/xfail")
    for sub in ast.walk(func):
        if isinstance(sub, ast.Call) and isinstance(sub.func, ast.Attribute) and sub.func.attr == "skip":
            problems.append(f"{node_id}: calls pytest.skip")
    return problems


def test_the_dossier_is_generated_from_the_catalogue():
    path = ROOT / "docs" / "conformity.md"
    assert path.exists(), "run: python manage.py conformity"
    assert path.read_text() == catalogue_markdown(), "docs/conformity.md is stale: run python manage.py conformity"


def test_every_measure_has_code_or_an_organisational_mark_and_a_known_source():
    codes = [m.code for m in CATALOGUE]
    assert len(codes) == len(set(codes)), "measure codes must be unique"
    for m in CATALOGUE:
        assert m.source in SOURCES, m.code
        assert m.title.strip(), m.code
        if not m.modules:
            assert m.organisational.strip(), f"{m.code} has neither code nor an organisational mark"
        else:
            assert m.what_dpi_does.strip(), f"{m.code} lists code but does not say what it does"
            assert m.tests, f"{m.code} lists code but no test proving it"
    for source in SOURCES:
        assert any(m.source == source for m in CATALOGUE), f"no measure from {source}"
    fiches = {m.reference for m in CATALOGUE if m.source == "DPI"}
    assert {f"fiche {n}" for n in range(1, 15)} <= fiches, "each of the 14 DPI fiches has a measure"


def test_every_listed_module_exists():
    missing = [f"{m.code}: {mod}" for m in CATALOGUE for mod in m.modules if importlib.util.find_spec(mod) is None]
    assert not missing, missing


def test_every_listed_test_exists_and_is_not_skipped():
    problems = [p for m in CATALOGUE for t in m.tests for p in _problems_of_test(t)]
    assert not problems, "\n".join(problems)


def test_every_listed_setting_exists():
    unknown = [f"{m.code}: {s}" for m in CATALOGUE for s in m.settings if not hasattr(settings, s)]
    assert not unknown, unknown


@pytest.mark.parametrize("snippet", ["@pytest.mark.skip\ndef test_x():\n    pass\n",
                                     "def test_x():\n    pytest.skip('later')\n"])
def test_the_checker_catches_a_skipped_test(tmp_path, monkeypatch, snippet):
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_fake.py").write_text("import pytest\n" + snippet)
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)
    _tree.cache_clear()
    try:
        assert _problems_of_test("tests/test_fake.py::test_x")
        assert _problems_of_test("tests/test_fake.py::test_missing")
    finally:
        _tree.cache_clear()
