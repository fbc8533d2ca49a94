#!/usr/bin/env python3
"""Derive the CRDs the lab's Kubernetes API emulator serves from the upstream CRD YAML.

Reads every CustomResourceDefinition in REFERENCE/flux/*.yaml and REFERENCE/external-secrets/*.yaml
and writes one JSON file per CRD, named <metadata.name>.json, into lab/castle_lab/kube/crds/, plus
a SOURCES.md that names each file's upstream repository, path, tag, commit and license as
REFERENCE/SOURCES.md states them. The CRDs keep every version and their whole structure (types,
properties, required, enums, patterns, bounds, defaults, x-kubernetes-* keys with CEL validations);
descriptions and examples are dropped. Output is deterministic: re-running writes the same bytes.

The CRDs of the charts the lab installs are built from less: MetalLB's from the condensed spec
schemas in REFERENCE/metallb/metallb-crds-condensed.json, Longhorn's from the bare names in
REFERENCE/longhorn/longhorn-crd-names.json (schemas that keep unknown fields). Each is built when
its reference file is present.

    .venv/bin/python lab/tools/derive_crds.py [--reference ../shared/reference] [--out DIR]
"""

import argparse
import json
import pathlib
import re
import sys

import yaml

REPO = pathlib.Path(__file__).resolve().parents[2]
DEFAULT_REFERENCE = REPO.parent / 'shared' / 'reference'
DEFAULT_OUT = REPO / 'lab' / 'castle_lab' / 'kube' / 'crds'
GROUPS = ('flux', 'external-secrets')
DERIVED = 'derived by lab/tools/derive_crds.py: descriptions dropped, structure kept'

# Keywords of apiextensions.k8s.io/v1 JSONSchemaProps that only document.
DOCUMENTARY = frozenset(('description', 'example', 'externalDocs', 'title'))
# The other keywords JSONSchemaProps knows; anything else in a schema stops the derivation.
STRUCTURAL = frozenset((
    '$ref', '$schema', 'additionalItems', 'additionalProperties', 'allOf', 'anyOf', 'default',
    'definitions', 'dependencies', 'enum', 'exclusiveMaximum', 'exclusiveMinimum', 'format', 'id',
    'items', 'maxItems', 'maxLength', 'maxProperties', 'maximum', 'minItems', 'minLength',
    'minProperties', 'minimum', 'multipleOf', 'not', 'nullable', 'oneOf', 'pattern',
    'patternProperties', 'properties', 'required', 'type', 'uniqueItems',
    'x-kubernetes-embedded-resource', 'x-kubernetes-int-or-string', 'x-kubernetes-list-map-keys',
    'x-kubernetes-list-type', 'x-kubernetes-map-type', 'x-kubernetes-preserve-unknown-fields',
    'x-kubernetes-validations'))
SCHEMA_MAPS = ('properties', 'patternProperties', 'definitions')
SCHEMA_LISTS = ('allOf', 'anyOf', 'oneOf')
SCHEMA_OR_BOOL = ('additionalProperties', 'additionalItems', 'not')
# Fields of a CRD version kept besides its schema; additionalPrinterColumns lose descriptions.
VERSION_KEYS = ('name', 'served', 'storage', 'deprecated', 'deprecationWarning', 'subresources',
                'additionalPrinterColumns', 'selectableFields')
SPEC_KEYS = ('group', 'names', 'scope', 'conversion', 'preserveUnknownFields')
METALLB = 'metallb/metallb-crds-condensed.json'
LONGHORN = 'longhorn/longhorn-crd-names.json'
CHART_SOURCES = {
    METALLB: {'repository': 'metallb/metallb', 'path': 'config/crd/bases/metallb.io_*.yaml',
              'commit': 'stored commits 40da9ef119d08f551a90dcbd2af90a1a37d5ed2e (ipaddresspools), '
                        '0c865cf22ac65ea4949d4bb3bdb7599baf3d77c7 (l2advertisements)',
              'license': 'Apache-2.0',
              'built': 'spec schemas as condensed in the reference (≈ MetalLB v0.13); apiVersion, kind, metadata '
                       'and status added as every CRD has them'},
    LONGHORN: {'repository': 'longhorn/longhorn-manager', 'path': 'k8s/pkg/apis/longhorn/v1beta2/register.go',
               'commit': 'stored commit 1683a7319ea2110ccf06941dff241620127b55e6', 'license': 'Apache-2.0',
               'built': 'names only: kind and plural from the reference; the schema is '
                        '`x-kubernetes-preserve-unknown-fields: true` because the fields are not known here'},
}


class DeriveError(Exception):
    """The upstream data is not what this script knows how to derive."""


def strip_schema(schema, where):
    """A copy of a JSONSchemaProps without documentary keywords, at any depth."""
    if not isinstance(schema, dict):
        raise DeriveError('{0}: a schema must be a mapping'.format(where))
    unknown = set(schema) - STRUCTURAL - DOCUMENTARY
    if unknown:
        raise DeriveError('{0}: unknown schema keywords {1}'.format(where, sorted(unknown)))
    out = {}
    for key, value in schema.items():
        if key in DOCUMENTARY:
            continue
        if key in SCHEMA_MAPS:
            value = {name: strip_schema(sub, '{0}.{1}'.format(where, name)) for name, sub in value.items()}
        elif key in SCHEMA_LISTS:
            value = [strip_schema(sub, '{0}.{1}[{2}]'.format(where, key, i)) for i, sub in enumerate(value)]
        elif key == 'items':
            value = ([strip_schema(sub, '{0}[{1}]'.format(where, i)) for i, sub in enumerate(value)]
                     if isinstance(value, list) else strip_schema(value, where + '[]'))
        elif key in SCHEMA_OR_BOOL and not isinstance(value, bool):
            value = strip_schema(value, '{0}.{1}'.format(where, key))
        elif key == 'dependencies':
            value = {name: sub if isinstance(sub, list) else strip_schema(sub, where + '.' + name)
                     for name, sub in value.items()}
        out[key] = value
    return out


def derive(crd, source):
    """The lab's CRD from an upstream one: everything structural, no documentation."""
    if crd.get('apiVersion') != 'apiextensions.k8s.io/v1' or crd.get('kind') != 'CustomResourceDefinition':
        raise DeriveError('{0}: not an apiextensions.k8s.io/v1 CustomResourceDefinition'.format(source))
    name = crd['metadata']['name']
    versions = []
    for version in crd['spec']['versions']:
        kept = {key: version[key] for key in VERSION_KEYS if key in version}
        if 'additionalPrinterColumns' in kept:
            kept['additionalPrinterColumns'] = [{k: v for k, v in column.items() if k not in DOCUMENTARY}
                                                for column in kept['additionalPrinterColumns']]
        where = '{0} {1}'.format(name, version['name'])
        kept['schema'] = {'openAPIV3Schema': strip_schema(version['schema']['openAPIV3Schema'], where)}
        versions.append(kept)
    spec = {key: crd['spec'][key] for key in SPEC_KEYS if key in crd['spec']}
    spec['versions'] = versions
    metadata = {key: crd['metadata'][key] for key in ('name', 'labels', 'annotations') if key in crd['metadata']}
    return {'apiVersion': crd['apiVersion'], 'kind': crd['kind'], 'metadata': metadata, 'spec': spec}


def crd_shell(group, kind, plural, version, schema):
    """A namespaced v1 CRD with one served storage version and a status subresource."""
    return {'apiVersion': 'apiextensions.k8s.io/v1', 'kind': 'CustomResourceDefinition',
            'metadata': {'name': '{0}.{1}'.format(plural, group)},
            'spec': {'group': group, 'scope': 'Namespaced',
                     'names': {'kind': kind, 'listKind': kind + 'List', 'plural': plural, 'singular': kind.lower()},
                     'versions': [{'name': version, 'served': True, 'storage': True, 'subresources': {'status': {}},
                                   'additionalPrinterColumns': [], 'schema': {'openAPIV3Schema': schema}}]}}


def without_comments(schema):
    if isinstance(schema, dict):
        return {k: without_comments(v) for k, v in schema.items() if not k.startswith('_')}
    if isinstance(schema, list):
        return [without_comments(item) for item in schema]
    return schema


def metallb_crds(condensed):
    """MetalLB's CRDs from the condensed reference: its spec schemas inside the usual object envelope."""
    crds = []
    for name, entry in sorted(condensed['crds'].items()):
        (version,) = [v['name'] for v in entry['versions'] if v.get('storage')]
        schema = {'type': 'object', 'properties': {
            'apiVersion': {'type': 'string'}, 'kind': {'type': 'string'}, 'metadata': {'type': 'object'},
            'spec': strip_schema(without_comments(entry['spec']), name), 'status': {'type': 'object'}}}
        if entry.get('requiredTopLevel'):
            schema['required'] = list(entry['requiredTopLevel'])
        crd = crd_shell(condensed['group'], entry['kind'], entry['plural'], version, schema)
        if crd['metadata']['name'] != name:
            raise DeriveError('{0}: plural and group do not make {1}'.format(METALLB, name))
        crds.append(crd)
    return crds


def longhorn_crds(names):
    """Longhorn's CRDs from their names alone: every field is kept, none is checked."""
    if len(names['kinds']) != len(names['crd_names']):
        raise DeriveError('{0}: kinds and crd_names differ in length'.format(LONGHORN))
    crds = []
    for kind, name in zip(names['kinds'], names['crd_names']):
        plural, group = name.split('.', 1)
        if group != names['group']:
            raise DeriveError('{0}: {1} is not in group {2}'.format(LONGHORN, name, names['group']))
        crds.append(crd_shell(group, kind, plural, names['version'],
                              {'type': 'object', 'x-kubernetes-preserve-unknown-fields': True}))
    return crds


def chart_crds(reference):
    """{reference file: [CRD]} for the chart references present."""
    builders = {METALLB: metallb_crds, LONGHORN: longhorn_crds}
    found = {}
    for rel, builder in builders.items():
        path = reference / rel
        if path.is_file():
            found[rel] = builder(json.loads(path.read_text(encoding='utf-8')))
    return found


def dump(obj):
    return json.dumps(obj, indent=1, sort_keys=True, ensure_ascii=False) + '\n'


def upstream_sources(reference):
    """Rows of REFERENCE/SOURCES.md by file: repository, path, tag, commit (full), license."""
    rows = []
    for line in (reference / 'SOURCES.md').read_text(encoding='utf-8').splitlines():
        cells = [cell.strip() for cell in line.strip().strip('|').split('|')]
        if line.startswith('|') and len(cells) >= 5 and cells[0].split(' ')[0].endswith('.yaml'):
            rows.append(cells)
    full_commits = set(re.findall(r'\b[0-9a-f]{40}\b', ' '.join(row[3] for row in rows)))
    sources = {}
    for cells in rows:
        tag = re.search(r'\bv\d+(?:\.\d+)+\b', cells[3])
        short = re.search(r'\b[0-9a-f]{7,40}\b', cells[3])
        commits = [c for c in full_commits if short and c.startswith(short.group(0))]
        if not tag or len(commits) != 1:
            raise DeriveError('SOURCES.md: no tag and full commit for {0}'.format(cells[0]))
        sources[cells[0].split(' ')[0]] = {'repository': cells[1], 'path': cells[2], 'tag': tag.group(0),
                                           'commit': commits[0], 'license': cells[4]}
    return sources


def sources_md(entries, chart_entries=()):
    lines = ['# Bundled CRDs — sources', '',
             'CustomResourceDefinitions the lab\'s Kubernetes API emulator serves, one JSON file each.',
             'Upstream data as /work/shared/reference/SOURCES.md states it; regenerate with',
             '`.venv/bin/python lab/tools/derive_crds.py` (needs `../shared/reference`).', '',
             DERIVED, '',
             '| File | Upstream repository | Upstream path | Tag | Commit | License |',
             '| --- | --- | --- | --- | --- | --- |']
    for filename, src in sorted(entries):
        lines.append('| {0} | {1[repository]} | {1[path]} | {1[tag]} | {1[commit]} | {1[license]} |'.format(
            filename, src))
    if chart_entries:
        lines += ['', '## CRDs of the charts the lab installs', '',
                  'Built, not derived: the reference holds less than the upstream CRD YAML.', '',
                  '| File | Upstream repository | Upstream path | Commit | License | Built from |',
                  '| --- | --- | --- | --- | --- | --- |']
        for filename, rel in sorted(chart_entries):
            src = CHART_SOURCES[rel]
            lines.append('| {0} | {1[repository]} | {1[path]} | {1[commit]} | {1[license]} | {2}: {1[built]} |'.format(
                filename, src, rel))
    return '\n'.join(lines) + '\n'


def build(reference):
    """{file name: text} of everything the crds directory holds."""
    sources = upstream_sources(reference)
    files, entries = {}, []
    for group in GROUPS:
        paths = sorted((reference / group).glob('*.yaml'))
        if not paths:
            raise DeriveError('no CRD YAML in {0}'.format(reference / group))
        for path in paths:
            rel = '{0}/{1}'.format(group, path.name)
            if rel not in sources:
                raise DeriveError('{0} is not listed in {1}'.format(rel, reference / 'SOURCES.md'))
            with path.open(encoding='utf-8') as stream:
                docs = [doc for doc in yaml.load_all(stream, Loader=getattr(yaml, 'CSafeLoader', yaml.SafeLoader))
                        if doc]
            for crd in docs:
                filename = crd['metadata']['name'] + '.json'
                if filename in files:
                    raise DeriveError('{0}: {1} defined twice'.format(rel, filename))
                files[filename] = dump(derive(crd, rel))
                entries.append((filename, sources[rel]))
    chart_entries = []
    for rel, crds in chart_crds(reference).items():
        for crd in crds:
            filename = crd['metadata']['name'] + '.json'
            if filename in files:
                raise DeriveError('{0}: {1} defined twice'.format(rel, filename))
            files[filename] = dump(crd)
            chart_entries.append((filename, rel))
    files['SOURCES.md'] = sources_md(entries, chart_entries)
    return files


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n', 1)[0])
    parser.add_argument('--reference', type=pathlib.Path, default=DEFAULT_REFERENCE,
                        help='the shared reference data (default: ../shared/reference from the repository root)')
    parser.add_argument('--out', type=pathlib.Path, default=DEFAULT_OUT,
                        help='where to write the CRDs (default: lab/castle_lab/kube/crds)')
    args = parser.parse_args(argv)
    try:
        files = build(args.reference)
    except (DeriveError, OSError, KeyError, ValueError, yaml.YAMLError) as exc:
        print('derive_crds: {0}'.format(exc), file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    # CRDs upstream no longer has go, but only from a directory this script wrote before.
    previous = args.out / 'SOURCES.md'
    if previous.is_file() and DERIVED in previous.read_text(encoding='utf-8'):
        for stale in sorted(set(p.name for p in args.out.glob('*.json')) - set(files)):
            (args.out / stale).unlink()
    for name, text in sorted(files.items()):
        (args.out / name).write_text(text, encoding='utf-8')
    print('{0} files in {1}'.format(len(files), args.out))
    return 0


if __name__ == '__main__':
    sys.exit(main())
