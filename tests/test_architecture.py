"""The shape of the code, checked like behaviour (docs/architecture.md): no app reaches into
another app's private names, and no file grows past 600 lines. The layering itself is
import-linter's (`lint-imports`, run by `make test`), with its contracts in pyproject.toml."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
APPS = ("config", "core", "curation", "review", "training", "evaluation", "experiments")


def _modules():
    for app in APPS:
        for path in sorted((ROOT / app).rglob("*.py")):
            if "migrations" not in path.parts:
                yield app, path


def test_no_app_imports_another_apps_private_names():
    offences = []
    for app, path in _modules():
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if not isinstance(node, ast.ImportFrom) or node.level or not node.module:
                continue
            target = node.module.split(".")[0]
            if target == app or target not in APPS:
                continue
            private = [a.name for a in node.names if a.name.startswith("_")]
            private_modules = [p for p in node.module.split(".") if p.startswith("_")]
            if private or private_modules:
                where = f"{path.relative_to(ROOT)}:{node.lineno}"
                offences.append(f"{where} imports {node.module}: {private or private_modules}")
    assert offences == []


MAX_LINES = 600


def test_no_python_file_outside_migrations_is_longer_than_600_lines():
    roots = [*APPS, "tests", "bench"]
    long_files = {
        str(path.relative_to(ROOT)): n
        for root in roots
        for path in (ROOT / root).rglob("*.py")
        if "migrations" not in path.parts and (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert long_files == {}
