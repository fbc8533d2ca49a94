#!/usr/bin/env python3
"""Derive the schemas of the built-in kinds the lab's Kubernetes API emulator serves.

Reads the Kubernetes 1.35 definitions that the PyPI package kubernetes-validate carries
(kubernetes_validate/kubernetes-json-schema/v1.35.0-local/_definitions.json, a JSON Schema rendering
of the release's OpenAPI document, keyed io.k8s.api.apps.v1.DeploymentSpec etc.) from its wheel, keeps
the definitions reachable from the kinds castle_lab.kube.api.registry.BUILTINS serves, and writes them
in the shape of the release's api/openapi-spec/v3 documents (components.schemas) to
lab/castle_lab/kube/openapi/definitions.json, plus SOURCES.md. The package's rendering is undone:
`type: [X, "null"]` becomes `type: X`, `$ref: #/$defs/N` becomes `#/components/schemas/N` (wrapped in
allOf when it has siblings, as the v3 documents do), the apiVersion/kind enums it adds are dropped and
IntOrString is `type: string, format: int-or-string` again. Descriptions are kept: `kubectl explain`
prints them. Output is deterministic: re-running writes the same bytes.

    .venv/bin/python lab/tools/derive_builtin_schemas.py WHEEL [--out DIR]
"""

import argparse
import json
import pathlib
import sys
import zipfile

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / 'lab'))

from castle_lab.kube.api.registry import BUILTINS  # noqa: E402  pylint: disable=wrong-import-position

DEFAULT_OUT = REPO / 'lab' / 'castle_lab' / 'kube' / 'openapi'
MEMBER = 'kubernetes_validate/kubernetes-json-schema/v1.35.0-local/_definitions.json'
REF_FROM, REF_TO = '#/$defs/', '#/components/schemas/'
INT_OR_STRING = 'io.k8s.apimachinery.pkg.util.intstr.IntOrString'
KNOWN = frozenset(('description', 'type', '$ref', 'properties', 'items', 'required', 'enum', 'format',
                   'additionalProperties', 'oneOf', 'x-kubernetes-group-version-kind', 'x-kubernetes-list-type',
                   'x-kubernetes-list-map-keys', 'x-kubernetes-patch-strategy', 'x-kubernetes-patch-merge-key',
                   'x-kubernetes-map-type', 'x-kubernetes-unions'))
UPSTREAM = {'package': 'kubernetes-validate 1.37.0 (PyPI)', 'member': MEMBER,
            'derived from': 'kubernetes/kubernetes api/openapi-spec at v1.35.0', 'license': 'Apache-2.0'}


class DeriveError(Exception):
    """The package's data is not what this script knows how to derive."""


def undo(schema, where, top=False):
    """A schema of the package in the v3 documents' shape."""
    if not isinstance(schema, dict):
        raise DeriveError('{0}: a schema must be a mapping'.format(where))
    unknown = set(schema) - KNOWN
    if unknown:
        raise DeriveError('{0}: unknown schema keywords {1}'.format(where, sorted(unknown)))
    out = {}
    for key, value in schema.items():
        if key == 'type' and isinstance(value, list):
            kept = [t for t in value if t != 'null']
            if len(kept) != 1:
                raise DeriveError('{0}: type {1}'.format(where, value))
            value = kept[0]
        elif key == 'properties':
            value = {name: undo(sub, '{0}.{1}'.format(where, name)) for name, sub in value.items()}
            if top:
                for name in ('apiVersion', 'kind'):
                    value.get(name, {}).pop('enum', None)
        elif key in ('items', 'additionalProperties') and isinstance(value, dict):
            value = undo(value, where + '[]')
        elif key == 'oneOf':
            value = [undo(sub, where) for sub in value]
        elif key == '$ref':
            if not value.startswith(REF_FROM):
                raise DeriveError('{0}: $ref {1}'.format(where, value))
            value = REF_TO + value[len(REF_FROM):]
        out[key] = value
    if '$ref' in out and len(out) > 1:
        out['allOf'] = [{'$ref': out.pop('$ref')}]
    return out


def refs(schema):
    """Names of the definitions a schema refers to."""
    found = set()
    if isinstance(schema, dict):
        for key, value in schema.items():
            if key == '$ref' and isinstance(value, str):
                found.add(value[len(REF_FROM):])
            else:
                found |= refs(value)
    elif isinstance(schema, list):
        for item in schema:
            found |= refs(item)
    return found


def served_roots(definitions):
    """Definition names of the kinds the lab serves, by x-kubernetes-group-version-kind."""
    wanted = {(t.group, t.version, t.kind) for t in BUILTINS}
    roots = set()
    for name, schema in definitions.items():
        for gvk in schema.get('x-kubernetes-group-version-kind', []):
            if (gvk['group'], gvk['version'], gvk['kind']) in wanted:
                roots.add(name)
    missing = wanted - {(g['group'], g['version'], g['kind']) for n in roots
                        for g in definitions[n]['x-kubernetes-group-version-kind']}
    if missing:
        raise DeriveError('no definition for {0}'.format(sorted(missing)))
    return roots


def derive(definitions):
    """{name: schema} of everything reachable from the served kinds."""
    seen, todo = set(), sorted(served_roots(definitions))
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        if name not in definitions:
            raise DeriveError('dangling $ref {0}'.format(name))
        seen.add(name)
        todo.extend(sorted(refs(definitions[name]) - seen))
    out = {name: undo(definitions[name], name, top=True) for name in sorted(seen)}
    if INT_OR_STRING in out:
        out[INT_OR_STRING] = {'type': 'string', 'format': 'int-or-string'}
    return out


def dump(definitions):
    """One definition a line: small diffs when upstream changes."""
    lines = ['{0}: {1}'.format(json.dumps(name), json.dumps(schema, sort_keys=True, ensure_ascii=False))
             for name, schema in sorted(definitions.items())]
    return '{\n' + ',\n'.join(lines) + '\n}\n'


def sources_md(count):
    return '\n'.join([
        '# Schemas of the built-in kinds — sources', '',
        '`definitions.json` holds {0} OpenAPI v3 component schemas (io.k8s.api.*, io.k8s.apimachinery.*): those'
        .format(count),
        'reachable from the built-in kinds the lab serves. The API emulator validates built-in objects against them',
        'and serves them under /openapi/v3 for `kubectl explain`. Derived by `lab/tools/derive_builtin_schemas.py`;',
        'do not edit by hand.', '',
        '| file | source | member | derived from | license |', '|---|---|---|---|---|',
        '| definitions.json | {0[package]} | {0[member]} | {0[derived from]} | {0[license]} |'.format(UPSTREAM),
        '', 'The package renders the OpenAPI document as JSON Schema; the script restores the v3 shape',
        '(single types, `#/components/schemas/` references wrapped in allOf, no apiVersion/kind enums,',
        'IntOrString as an int-or-string string). The package drops `default` values and enums of fields.', ''])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n', 1)[0])
    parser.add_argument('wheel', type=pathlib.Path, help='the kubernetes-validate wheel (pip download)')
    parser.add_argument('--out', type=pathlib.Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    try:
        with zipfile.ZipFile(args.wheel) as wheel:
            definitions = json.loads(wheel.read(MEMBER))['$defs']
        derived = derive(definitions)
    except (DeriveError, OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        print('derive_builtin_schemas: {0}'.format(exc), file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / 'definitions.json').write_text(dump(derived), encoding='utf-8')
    (args.out / 'SOURCES.md').write_text(sources_md(len(derived)), encoding='utf-8')
    print('{0} definitions in {1}'.format(len(derived), args.out))
    return 0


if __name__ == '__main__':
    sys.exit(main())
