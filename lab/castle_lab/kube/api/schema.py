"""Custom resources against their structural openAPIV3Schema: pruning of unknown fields, nulls and defaults as
apiextensions-apiserver pkg/apiserver/schema/defaulting does them, then jsonschema."""

import copy

import jsonschema

SKIP_KEYS = ('x-kubernetes-preserve-unknown-fields', 'x-kubernetes-int-or-string', 'x-kubernetes-embedded-resource',
             'x-kubernetes-list-type', 'x-kubernetes-list-map-keys', 'x-kubernetes-map-type',
             'x-kubernetes-validations', 'nullable')


def to_jsonschema(schema):
    """The structural schema as plain JSON Schema: int-or-string and nullable spelled out."""
    if isinstance(schema, list):
        return [to_jsonschema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    result = {}
    for key, value in schema.items():
        if key in SKIP_KEYS:
            continue
        if key in ('properties', 'patternProperties'):
            result[key] = {name: to_jsonschema(sub) for name, sub in value.items()}
        elif key in ('items', 'additionalProperties', 'not', 'allOf', 'anyOf', 'oneOf'):
            result[key] = to_jsonschema(value)
        else:
            result[key] = value
    if schema.get('x-kubernetes-int-or-string'):
        result.pop('type', None)
        result['anyOf'] = result.get('anyOf', []) + [{'type': 'integer'}, {'type': 'string'}]
    if schema.get('nullable') and 'type' in result:
        result['type'] = [result['type'], 'null']
    return result


def prune(value, schema, path=''):
    """Drop fields the schema does not know (unless it preserves them); returns the pruned paths."""
    dropped = []
    if not isinstance(schema, dict) or schema.get('x-kubernetes-preserve-unknown-fields'):
        if isinstance(value, dict) and isinstance(schema, dict) and schema.get('properties'):
            for key, sub in schema['properties'].items():
                if key in value:
                    dropped += prune(value[key], sub, _join(path, key))
        return dropped
    if isinstance(value, dict):
        properties = schema.get('properties')
        additional = schema.get('additionalProperties')
        for key in list(value):
            if properties is not None and key in properties:
                dropped += prune(value[key], properties[key], _join(path, key))
            elif isinstance(additional, dict):
                dropped += prune(value[key], additional, _join(path, key))
            elif additional is True:
                continue
            elif schema.get('type') == 'object' or properties is not None:
                del value[key]
                dropped.append(_join(path, key))
    elif isinstance(value, list) and isinstance(schema.get('items'), dict):
        for index, item in enumerate(value):
            dropped += prune(item, schema['items'], '{0}[{1}]'.format(path, index))
    return dropped


def default(value, schema):
    """Apply the schema's `default:` values in place: a field that is absent, or null where the schema does not
    allow null, gets its default; a non-nullable null without a default is dropped. Nullable nulls stay."""
    if not isinstance(schema, dict):
        return
    if isinstance(value, dict):
        properties = schema.get('properties')
        properties = {k: v for k, v in properties.items() if isinstance(v, dict)} \
            if isinstance(properties, dict) else {}
        additional = schema.get('additionalProperties')
        for key, sub in properties.items():
            if 'default' in sub and (key not in value or (value[key] is None and not sub.get('nullable'))):
                value[key] = copy.deepcopy(sub['default'])
        for key in list(value):
            sub = properties.get(key, additional if isinstance(additional, dict) else None)
            if sub is None:
                continue
            if value[key] is None and not sub.get('nullable'):
                if 'default' not in sub:
                    del value[key]
                    continue
                value[key] = copy.deepcopy(sub['default'])
            default(value[key], sub)
    elif isinstance(value, list) and isinstance(schema.get('items'), dict):
        items = schema['items']
        for index, item in enumerate(value):
            if item is None and not items.get('nullable') and 'default' in items:
                value[index] = copy.deepcopy(items['default'])
            default(value[index], items)


def _join(path, key):
    return '{0}.{1}'.format(path, key) if path else key


def validate(obj, schema):
    """Prune obj in place; return (pruned field paths, [(field, message)] of schema violations)."""
    top = dict(schema)
    properties = dict(top.get('properties') or {})
    # apiVersion, kind and metadata are the server's to check; never pruned.
    for key in ('apiVersion', 'kind', 'metadata'):
        properties[key] = {'type': 'object', 'x-kubernetes-preserve-unknown-fields': True} if key == 'metadata' \
            else {'type': 'string'}
    top['properties'] = properties
    top.setdefault('type', 'object')
    dropped = prune(obj, top)
    default(obj, top)
    checker = jsonschema.Draft4Validator(to_jsonschema(top))
    errors = []
    for error in sorted(checker.iter_errors(obj), key=lambda e: list(e.absolute_path)):
        field = ''
        for part in error.absolute_path:
            field += '[{0}]'.format(part) if isinstance(part, int) else ('.' if field else '') + part
        errors.append((field or '<root>', error.message, error.validator, error.instance))
    return dropped, errors
