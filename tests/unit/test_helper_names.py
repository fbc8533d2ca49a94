"""Test helpers are imported by their bare names (their folders are on sys.path): two with one name would
shadow each other, and a test would silently get the other's fakes."""

import collections
import pathlib

TESTS = pathlib.Path(__file__).resolve().parents[1]


def test_no_two_test_helpers_share_a_name():
    found = collections.defaultdict(list)
    for path in TESTS.rglob('*.py'):
        if path.name.startswith('test_') or path.name in ('conftest.py', '__init__.py') or 'output' in path.parts:
            continue
        found[path.stem].append(str(path.relative_to(TESTS)))
    assert {name: paths for name, paths in found.items() if len(paths) > 1} == {}


def test_no_two_test_modules_outside_packages_share_a_name():
    """pytest imports a test file outside a package by its bare name: a second file of that name is an
    'import file mismatch' error, found only when both run in one process."""
    found = collections.defaultdict(list)
    for path in TESTS.rglob('test_*.py'):
        if 'output' in path.parts or (path.parent / '__init__.py').exists():
            continue
        found[path.name].append(str(path.relative_to(TESTS)))
    assert {name: paths for name, paths in found.items() if len(paths) > 1} == {}
