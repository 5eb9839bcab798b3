"""Data migrations hold their own constants: they import no app code, and their copies of the
seeded data match what the apps seed today (a change to one must be a new migration)."""

import ast
import importlib
from pathlib import Path

import pytest

from routing import baseline
from routing.engine import normalize_keyword
from tuning import defaults

ROOT = Path(__file__).resolve().parent.parent
APPS = ["accounts", "audit", "routing", "labeling", "tuning", "rollouts"]


def data_migrations():
    """Migrations that run Python (schema migrations may name a model's default callable)."""
    files = (f for app in APPS for f in (ROOT / app / "migrations").glob("0*.py"))
    return sorted(f for f in files if "RunPython" in f.read_text())


@pytest.mark.parametrize(
    "path", data_migrations(), ids=lambda p: f"{p.parent.parent.name}/{p.name}"
)
def test_a_data_migration_imports_no_app_code(path):
    imported = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            imported += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            imported.append(node.module or "")
    assert not [m for m in imported if m.split(".")[0] in APPS + ["cascade_admin"]]


def test_the_v7_seed_is_the_baseline():
    seed = importlib.import_module("routing.migrations.0002_seed_v7")
    assert seed.KEYWORDS == baseline.V7_KEYWORDS
    assert all(normalize_keyword(text) == text for text, _, _ in seed.KEYWORDS)
    assert baseline.v7_config() == seed.CONFIG
    assert (seed.TOKEN_THRESHOLD, seed.TURN_THRESHOLD) == (
        baseline.V7_TOKEN_THRESHOLD,
        baseline.V7_TURN_THRESHOLD,
    )
    assert seed.REPORTED == baseline.V7_REPORTED
    assert seed.NOTES == baseline.V7_NOTES


def test_the_slo_seed_is_the_defaults():
    seed = importlib.import_module("tuning.migrations.0002_seed_targets_and_costs")
    assert seed.SLOS == defaults.SLOS
