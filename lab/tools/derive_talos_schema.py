#!/usr/bin/env python3
"""Derive the Talos machine config schema the lab's Talos nodes validate against.

Reads REFERENCE/talos/config.schema.v1.11.6.json (JSON Schema draft 2020-12: the v1alpha1 document
and the multi-document kinds as a oneOf over $defs) and writes lab/castle_lab/talos/schema/
config.schema.json with the whole structure kept (types, properties, enums, patterns, required,
additionalProperties, $refs) and the documentation dropped (title, description, markdownDescription,
x-intellij-html-description), plus SOURCES.md naming the upstream file, tag, commit and license.
Output is deterministic: re-running writes the same bytes.

    .venv/bin/python lab/tools/derive_talos_schema.py [--reference ../shared/reference] [--out DIR]
"""

import argparse
import json
import pathlib
import sys

REPO = pathlib.Path(__file__).resolve().parents[2]
DEFAULT_REFERENCE = REPO.parent / 'shared' / 'reference'
DEFAULT_OUT = REPO / 'lab' / 'castle_lab' / 'talos' / 'schema'
SOURCE = 'talos/config.schema.v1.11.6.json'
DOCUMENTARY = frozenset(('title', 'description', 'markdownDescription', 'x-intellij-html-description'))
STRUCTURAL = frozenset(('$schema', '$id', '$ref', '$defs', 'type', 'properties', 'patternProperties',
                        'additionalProperties', 'items', 'enum', 'required', 'oneOf', 'anyOf', 'allOf',
                        'pattern', 'format', 'minimum', 'maximum', 'minItems', 'maxItems', 'const', 'default'))
SCHEMA_MAPS = ('properties', 'patternProperties', '$defs')
SCHEMA_LISTS = ('oneOf', 'anyOf', 'allOf')
SCHEMA_OR_BOOL = ('additionalProperties', 'items')
UPSTREAM = {'repository': 'siderolabs/talos', 'path': 'pkg/machinery/config/schemas/config.schema.json',
            'tag': 'v1.11.6', 'commit': '6dd14300ecad2ad4dd1c63f5550f67cf8973195a', 'license': 'MPL-2.0'}


class DeriveError(Exception):
    """The upstream schema holds something this script does not know how to derive."""


def strip(schema, where):
    """A copy of a schema without documentary keywords, at any depth."""
    if isinstance(schema, bool):
        return schema
    if not isinstance(schema, dict):
        raise DeriveError('{0}: a schema must be an object or a boolean'.format(where))
    unknown = set(schema) - STRUCTURAL - DOCUMENTARY
    if unknown:
        raise DeriveError('{0}: unknown schema keywords {1}'.format(where, sorted(unknown)))
    return {key: _stripped(key, value, '{0}/{1}'.format(where, key))
            for key, value in schema.items() if key not in DOCUMENTARY}


def _stripped(keyword, value, at):
    """A keyword's value with the schemas inside it stripped."""
    if keyword in SCHEMA_MAPS:
        return {name: strip(sub, at + '/' + name) for name, sub in value.items()}
    if keyword in SCHEMA_LISTS:
        return [strip(sub, '{0}/{1}'.format(at, index)) for index, sub in enumerate(value)]
    return strip(value, at) if keyword in SCHEMA_OR_BOOL else value


def sources_md():
    rows = ['# Sources of the Talos machine config schema', '',
            '`config.schema.json` is derived by `lab/tools/derive_talos_schema.py` from the upstream JSON Schema:',
            'documentation keywords (title, description, markdownDescription, x-intellij-html-description)',
            'dropped, structure kept. Do not edit it by hand; re-run the script.', '',
            '| file | repository | path | tag | commit | license |', '|---|---|---|---|---|---|',
            '| config.schema.json | {repository} | {path} | {tag} | {commit} | {license} |'.format(**UPSTREAM), '']
    return '\n'.join(rows)


def derive(reference, out):
    upstream = json.loads((reference / SOURCE).read_text(encoding='utf-8'))
    derived = strip(upstream, '#')
    out.mkdir(parents=True, exist_ok=True)
    (out / 'config.schema.json').write_text(json.dumps(derived, indent=1, sort_keys=True) + '\n', encoding='utf-8')
    (out / 'SOURCES.md').write_text(sources_md(), encoding='utf-8')
    return derived


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--reference', type=pathlib.Path, default=DEFAULT_REFERENCE)
    parser.add_argument('--out', type=pathlib.Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    try:
        derived = derive(args.reference, args.out)
    except (DeriveError, OSError, ValueError) as exc:
        print('derive_talos_schema: {0}'.format(exc), file=sys.stderr)
        return 1
    print('{0}: {1} definitions'.format(args.out / 'config.schema.json', len(derived['$defs'])))
    return 0


if __name__ == '__main__':
    sys.exit(main())
