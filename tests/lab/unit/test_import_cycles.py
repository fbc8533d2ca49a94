"""No import cycle inside castle_lab, nor inside the collection's plugins: modules import each other in one direction
only, whether the import stands at the top of a file or inside a function. The graph is read from the source (AST)."""

import ast
import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parents[3]
PACKAGES = {'castle_lab': REPO / 'lab' / 'castle_lab',
            'ansible_collections.ephemeral.castle.plugins': REPO / 'plugins'}


def modules(root, package):
    """{module name: file} of every Python file under `root`, which is the package `package`."""
    found = {}
    for path in sorted(root.rglob('*.py')):
        parts = list(path.relative_to(root).with_suffix('').parts)
        if parts[-1] == '__init__':
            parts.pop()
        found['.'.join([package, *parts])] = path
    return found


def _known(name, known):
    """The module of `known` an imported name lands in: itself, else its nearest enclosing package."""
    while name and name not in known:
        name = name.rpartition('.')[0]
    return name or None


def imports(name, path, known):
    """The modules of `known` the file `path` (module `name`) imports."""
    package = name if path.name == '__init__.py' else name.rpartition('.')[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split('.')
                base = '.'.join(parts[:len(parts) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module
            # `from package import module` imports the module; `from module import name` the module.
            targets = [base + '.' + alias.name if base + '.' + alias.name in known else base for alias in node.names]
        else:
            continue
        found.update(filter(None, (_known(target, known) for target in targets)))
    return found


def graph(root, package):
    known = modules(root, package)
    return {name: imports(name, path, known) for name, path in known.items()}


def cycles(edges):
    """The import cycles of a graph {module: modules it imports}: each strongly connected component of more than
    one module, or a module importing itself, as a sorted list (Tarjan's algorithm)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(edges.get(node, ())):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in edges.get(node, ()):
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return sorted(found)


@pytest.mark.parametrize('package', sorted(PACKAGES))
def test_no_import_cycle(package):
    edges = graph(PACKAGES[package], package)
    assert sum(len(targets) for targets in edges.values()) > 20, 'the import graph of {0} came out empty'.format(package)
    assert cycles(edges) == []


def test_a_cycle_is_found_through_relative_function_level_and_package_imports(tmp_path):
    root = tmp_path / 'pkg'
    (root / 'sub').mkdir(parents=True)
    (root / '__init__.py').write_text('')
    (root / 'sub' / '__init__.py').write_text('')
    (root / 'a.py').write_text('from .sub import b\n')
    (root / 'sub' / 'b.py').write_text('def later():\n    from ..c import value\n    return value\n')
    (root / 'c.py').write_text('import pkg.a\nvalue = 1\n')
    (root / 'd.py').write_text('from pkg import c\nfrom . import d\n')
    edges = graph(root, 'pkg')
    assert edges['pkg.a'] == {'pkg.sub.b'} and edges['pkg.sub.b'] == {'pkg.c'} and edges['pkg.c'] == {'pkg.a'}
    assert cycles(edges) == [['pkg.a', 'pkg.c', 'pkg.sub.b'], ['pkg.d']]


def test_names_of_a_package_lead_to_its_init_and_outside_imports_are_left_out(tmp_path):
    root = tmp_path / 'pkg'
    root.mkdir()
    (root / '__init__.py').write_text('VERSION = 1\n')
    (root / 'a.py').write_text('import json\nfrom . import VERSION\nfrom pkg.b import thing\n')
    (root / 'b.py').write_text('thing = 2\n')
    assert graph(root, 'pkg') == {'pkg': set(), 'pkg.a': {'pkg', 'pkg.b'}, 'pkg.b': set()}
