"""The CRDs bundled with the lab (Flux, External Secrets), and their schemas as JSON Schema.

The JSON files in castle_lab/kube/crds/ are derived from the upstream CRD YAML by
lab/tools/derive_crds.py (descriptions dropped, structure kept); see SOURCES.md there.
"""

import importlib.resources
import json

CRDS = ('kube', 'crds')


def _directory():
    return importlib.resources.files('castle_lab').joinpath(*CRDS)


def bundled_crd_names():
    """metadata.name of every bundled CRD, sorted."""
    return sorted(entry.name[:-len('.json')] for entry in _directory().iterdir() if entry.name.endswith('.json'))


def bundled_crd(name):
    """The bundled CustomResourceDefinition named `name` (e.g. gitrepositories.source.toolkit.fluxcd.io).

    Each call returns a fresh dict. KeyError if no such CRD is bundled.
    """
    if name not in bundled_crd_names():
        raise KeyError('no bundled CRD named {0!r}'.format(name))
    return _load(name)


def bundled_crds():
    """Every bundled CustomResourceDefinition, sorted by name."""
    return [_load(name) for name in bundled_crd_names()]


def _load(name):
    return json.loads(_directory().joinpath(name + '.json').read_text(encoding='utf-8'))


def served_version(crd, version=None):
    """The entry of crd's spec.versions for `version` (default: the storage version); it must be served."""
    for entry in crd['spec']['versions']:
        wanted = entry['name'] == version if version else entry.get('storage')
        if wanted:
            if not entry.get('served'):
                raise KeyError('{0} does not serve {1}'.format(crd['metadata']['name'], entry['name']))
            return entry
    raise KeyError('{0} has no version {1!r}'.format(crd['metadata']['name'], version))


# Keywords whose value is a map of schemas, a list of schemas, or a schema (or a boolean).
_SCHEMA_MAPS = ('properties', 'patternProperties', 'definitions')
_SCHEMA_LISTS = ('allOf', 'anyOf', 'oneOf')
_SCHEMA_OR_BOOL = ('additionalProperties', 'additionalItems', 'not', 'items')


def _int_or_string():
    return [{'type': 'integer'}, {'type': 'string'}]


def json_schema(openapi_schema, strict=False):
    """A JSON Schema (Draft 4) that jsonschema can check, from a structural openAPIV3Schema.

    - x-kubernetes-int-or-string: true accepts an integer or a string (anyOf);
    - nullable: true also accepts null;
    - strict=True rejects unknown fields, as the API server does with fieldValidation=Strict: an
      object with properties and neither additionalProperties nor
      x-kubernetes-preserve-unknown-fields gets additionalProperties: false (an embedded resource
      also keeps apiVersion, kind and metadata).
    Everything else is left as it is; x-kubernetes-* keys (CEL validations among them) are unknown
    keywords that jsonschema ignores, and `format` is not checked unless a format checker is given.
    The argument is not changed.
    """
    if not isinstance(openapi_schema, dict):
        return openapi_schema
    out = {}
    for key, value in openapi_schema.items():
        if key in _SCHEMA_MAPS:
            value = {name: json_schema(sub, strict) for name, sub in value.items()}
        elif key in _SCHEMA_LISTS or (key == 'items' and isinstance(value, list)):
            value = [json_schema(sub, strict) for sub in value]
        elif key in _SCHEMA_OR_BOOL:
            value = json_schema(value, strict)
        out[key] = value
    if out.get('x-kubernetes-int-or-string'):
        if out.get('type') in ('integer', 'string'):
            del out['type']
        if 'anyOf' not in out:
            out['anyOf'] = _int_or_string()
        elif out['anyOf'] != _int_or_string():
            out['allOf'] = out.get('allOf', []) + [{'anyOf': _int_or_string()}]
    if out.get('nullable'):
        if isinstance(out.get('type'), str):
            out['type'] = [out['type'], 'null']
        if 'enum' in out and None not in out['enum']:
            out['enum'] = out['enum'] + [None]
        for combinator in ('anyOf', 'oneOf'):
            if combinator in out:
                out[combinator] = out[combinator] + [{'type': 'null'}]
    if (strict and 'properties' in out and 'additionalProperties' not in out
            and not out.get('x-kubernetes-preserve-unknown-fields')):
        if out.get('x-kubernetes-embedded-resource'):
            out['properties'] = dict({'apiVersion': {'type': 'string'}, 'kind': {'type': 'string'},
                                      'metadata': {'type': 'object'}}, **out['properties'])
        out['additionalProperties'] = False
    return out
