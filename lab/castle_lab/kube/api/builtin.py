"""Built-in kinds as kube-apiserver decodes them: the component schemas of Kubernetes 1.35 (derived into
castle_lab/kube/openapi/definitions.json), unknown fields under fieldValidation Strict/Warn/Ignore, and
type errors with the messages of the server's JSON decoder and of server-side apply."""

import functools
import importlib.resources
import json
import re

from .errors import ApiError

OPENAPI = ('kube', 'openapi', 'definitions.json')
REF_PREFIX = '#/components/schemas/'
INT_OR_STRING = 'io.k8s.apimachinery.pkg.util.intstr.IntOrString'
QUANTITY = 'io.k8s.apimachinery.pkg.api.resource.Quantity'
# The strings apimachinery's resource.ParseQuantity accepts, and its two error messages.
QUANTITY_FORMAT = re.compile(r'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$')
QUANTITY_SUFFIX = re.compile(r'^(|Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][-+]?[0-9]+)$')
QUANTITY_WRONG = "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
SCALARS = ('bool', 'float64', 'int', 'int32', 'int64', 'string')
INT_RANGES = {'int32': (-2 ** 31, 2 ** 31 - 1), 'int64': (-2 ** 63, 2 ** 63 - 1)}


@functools.lru_cache(maxsize=None)
def definitions():
    """{definition name: schema} of the built-in kinds' OpenAPI v3 components."""
    text = importlib.resources.files('castle_lab').joinpath(*OPENAPI).read_text(encoding='utf-8')
    return json.loads(text)


@functools.lru_cache(maxsize=None)
def _by_kind():
    found = {}
    for name, schema in definitions().items():
        for gvk in schema.get('x-kubernetes-group-version-kind', []):
            found[(gvk['group'], gvk['version'], gvk['kind'])] = name
    return found


def definition_name(group, version, kind):
    """The component schema name of a served built-in kind, or None."""
    return _by_kind().get((group, version, kind))


def ref_of(schema):
    """The definition a property schema refers to ($ref, or allOf of one $ref as the v3 documents write it)."""
    if not isinstance(schema, dict):
        return None
    ref = schema.get('$ref')
    if ref is None and len(schema.get('allOf') or []) == 1:
        ref = schema['allOf'][0].get('$ref')
    return ref[len(REF_PREFIX):] if isinstance(ref, str) else None


def resolved(schema):
    """(definition name or None, the schema to check against)."""
    name = ref_of(schema)
    if name is None:
        return None, schema or {}
    return name, definitions()[name]


def _json_kind(value):
    if isinstance(value, bool):
        return 'bool'
    if isinstance(value, (int, float)):
        return 'number'
    return {str: 'string', list: 'array', dict: 'object'}.get(type(value), 'null')


def go_type(schema):
    """The Go type a field decodes into, as encoding/json names it in its errors."""
    name, schema = resolved(schema)
    if name == INT_OR_STRING:
        return 'intstr.IntOrString'
    if name == QUANTITY:
        return 'resource.Quantity'
    if name and schema.get('properties') is not None:
        parts = name.split('.')
        return '{0}.{1}'.format(parts[-2], parts[-1])
    kind = schema.get('type')
    if kind == 'integer':
        return schema.get('format') or 'int'
    if kind == 'number':
        return 'float64'
    if kind == 'boolean':
        return 'bool'
    if kind == 'string':
        return '[]uint8' if schema.get('format') == 'byte' else 'string'
    if kind == 'array':
        return '[]' + go_type(schema.get('items') or {})
    if isinstance(schema.get('additionalProperties'), dict):
        return 'map[string]' + go_type(schema['additionalProperties'])
    if name:
        parts = name.split('.')
        return '{0}.{1}'.format(parts[-2], parts[-1])
    return 'interface {}'


class Fields(dict):
    """A JSON object as a request body held it: `duplicates` names the keys it gave more than once (the last
    value stands, as in Go's decoder). Only while parsing: plain() turns a body back into plain dicts."""

    duplicates = ()

    @classmethod
    def of(cls, pairs):
        """json.loads' object_pairs_hook."""
        found = cls(pairs)
        if len(found) < len(pairs):
            seen = set()
            found.duplicates = [key for key, _value in pairs if key in seen or seen.add(key)]
        return found


def plain(value, path='', duplicates=None):
    """(value with plain dicts, the paths of its duplicate fields as the strict decoder names them)."""
    duplicates = [] if duplicates is None else duplicates
    if isinstance(value, dict):
        duplicates.extend(_join(path, key) for key in getattr(value, 'duplicates', ()))
        value = {key: plain(sub, _join(path, key), duplicates)[0] for key, sub in value.items()}
    elif isinstance(value, list):
        value = [plain(item, '{0}[{1}]'.format(path, index), duplicates)[0] for index, item in enumerate(value)]
    return value, duplicates


def check_duplicates(rtype, duplicates, strict, warnings):
    """Duplicate fields of a create or update body: refused under Strict, warned about under Warn."""
    problems = ['duplicate field "{0}"'.format(path) for path in duplicates]
    if problems and strict:
        raise ApiError(400, 'BadRequest', _cannot_handle(rtype, strict_error(problems)))
    if warnings is not None:
        warnings.extend(problems)


class Decoding:
    """What decoding one object into its Go type finds: unknown fields (pruned from the object; `strict` holds
    the decoder's words for them) and the first type error, as the server's JSON decoder reports them."""

    def __init__(self):
        self.unknown = []
        self.strict = []
        self.type_error = None

    def fail(self, message):
        if self.type_error is None:
            self.type_error = message


def decode(rtype, obj):
    """Prune the fields obj's kind does not declare; returns a Decoding, or None for kinds without a schema."""
    name = definition_name(rtype.group, rtype.version, rtype.kind)
    if name is None:
        return None
    found = Decoding()
    _decode_struct(obj, definitions()[name], name.split('.')[-1], '', '', found)
    return found


def _decode_struct(value, schema, struct, go_path, path, found):
    properties = schema.get('properties') or {}
    for key in list(value):
        if key not in properties:
            found.unknown.append(_join(path, key))
            found.strict.append('unknown field "{0}"'.format(_join(path, key)))
            del value[key]
            continue
        _decode(value[key], properties[key], struct, _join(go_path, key), _join(path, key), found, value, key)


def _decode(value, schema, struct, go_path, path, found, parent, key):
    """Check one field's value against its schema; struct and go_path name it as encoding/json does."""
    if value is None:
        return
    name, target = resolved(schema)

    def mismatch(shown=None):
        found.fail('json: cannot unmarshal {0} into Go struct field {1}.{2} of type {3}'.format(
            shown or _json_kind(value), struct, go_path, go_type(schema)))

    if name == INT_OR_STRING or target.get('format') == 'int-or-string':
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            shown = 'number {0}'.format(value) if isinstance(value, float) else _json_kind(value)
            found.fail('json: cannot unmarshal {0} into Go value of type int32'.format(shown))
        return
    if name == QUANTITY:
        text = str(value).strip() if not isinstance(value, (dict, list)) else json.dumps(value)
        if isinstance(value, bool):
            text = 'true' if value else 'false'
        matched = QUANTITY_FORMAT.match(text)
        if not matched:
            found.fail(QUANTITY_WRONG)
        elif not QUANTITY_SUFFIX.match(matched.group(2)):
            found.fail("unable to parse quantity's suffix")
        return
    kind = target.get('type')
    if name and target.get('properties') is not None:
        if not isinstance(value, dict):
            mismatch()
            return
        _decode_struct(value, target, name.split('.')[-1], go_path, path, found)
    elif kind == 'object' or isinstance(target.get('additionalProperties'), dict):
        if not isinstance(value, dict):
            mismatch()
            return
        values = target.get('additionalProperties')
        if isinstance(values, dict):
            for sub in list(value):
                _decode(value[sub], values, struct, go_path, '{0}[{1}]'.format(path, sub), found, value, sub)
        elif target.get('properties') is not None:
            _decode_struct(value, target, struct, go_path, path, found)
    elif kind == 'array':
        if not isinstance(value, list):
            mismatch()
            return
        for index, item in enumerate(value):
            _decode(item, target.get('items') or {}, struct, go_path, '{0}[{1}]'.format(path, index), found,
                    value, index)
    elif kind == 'integer':
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            mismatch()
        elif isinstance(value, float) and not value.is_integer():
            mismatch('number {0}'.format(value))
        else:
            low, high = INT_RANGES.get(target.get('format'), INT_RANGES['int64'])
            if not low <= value <= high or isinstance(value, float):
                mismatch('number {0}'.format(value))
    elif kind == 'number':
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            mismatch()
    elif kind == 'boolean':
        if not isinstance(value, bool):
            mismatch()
    elif kind == 'string':
        if not isinstance(value, str):
            mismatch()
        elif target.get('format') == 'byte' and not _base64(value):
            found.fail('illegal base64 data at input byte {0}'.format(_base64_error_at(value)))


def _join(path, key):
    return '{0}.{1}'.format(path, key) if path else key


def _base64(text):
    return _base64_error_at(text) is None


def _base64_error_at(text):
    """The byte offset Go's base64.StdEncoding reports for malformed input, or None when it decodes."""
    alphabet = re.compile(r'[A-Za-z0-9+/]')
    body = text.rstrip('=')
    padding = len(text) - len(body)
    for index, char in enumerate(body):
        if not alphabet.match(char):
            return index
    if padding > 2 or (len(text) % 4) != 0:
        return len(text) - padding if padding else len(body) - len(body) % 4
    return None


# fieldValidation

DIRECTIVES = ('Ignore', 'Strict', 'Warn')


def _cannot_handle(rtype, message):
    return '{0} in version "{1}" cannot be handled as a {0}: {2}'.format(rtype.kind, rtype.version, message)


def strict_error(problems):
    return 'strict decoding error: ' + ', '.join(problems)


def check_decoded(rtype, obj, strict, warnings, how, patch=None):
    """Decode obj as the server does for a create, update or patch and answer as it does:

    - a type error refuses the request: 400 for a create or update; for a patch 422 on field `patch` (with the
      patched object for JSON and merge patches, the patch itself for a strategic merge patch, whose converter
      words type errors its own way);
    - unknown fields are pruned; Strict refuses them, Warn (warnings is a list) reports each, Ignore (warnings
      is None) says nothing.
    """
    found = decode(rtype, obj)
    if found is None:
        return
    if found.type_error:
        if how == 'strategic':
            target = found.type_error.rsplit(' ', 1)[-1]
            scalar = found.type_error.startswith('json: ') and target in SCALARS
            raise _patch_invalid(go_value(patch), 'unrecognized type: ' + target if scalar else found.type_error)
        if how == 'patch':
            raise _patch_invalid(json.dumps(obj, separators=(',', ':')), found.type_error)
        raise ApiError(400, 'BadRequest', _cannot_handle(rtype, found.type_error))
    if not found.strict:
        return
    if strict:
        if how in ('patch', 'strategic'):
            shown = go_value(patch) if how == 'strategic' else json.dumps(obj, separators=(',', ':'))
            raise _patch_invalid(shown, strict_error(found.strict))
        raise ApiError(400, 'BadRequest', _cannot_handle(rtype, strict_error(found.strict)))
    if warnings is not None:
        warnings.extend(found.strict)


def go_value(value):
    """A decoded JSON value as Go's %+v prints it (maps with sorted keys)."""
    if isinstance(value, dict):
        return 'map[{0}]'.format(' '.join('{0}:{1}'.format(k, go_value(v)) for k, v in sorted(value.items())))
    if isinstance(value, list):
        return '[{0}]'.format(' '.join(go_value(v) for v in value))
    if isinstance(value, bool):
        return 'true' if value else 'false'
    return '<nil>' if value is None else str(value)


def _patch_invalid(shown, message):
    """The server's answer to a patch whose result does not decode: Invalid, on field `patch`."""
    cause = 'Invalid value: {0}: {1}'.format(json.dumps(shown), message)
    return ApiError(422, 'Invalid', ' "" is invalid: patch: ' + cause,
                    {'causes': [{'reason': 'FieldValueInvalid', 'message': cause, 'field': 'patch'}]})


# server-side apply: the applied configuration must fit the type's schema whatever fieldValidation says


def check_applied(rtype, namespace, name, body):
    """Raise the server's error for an apply configuration with unknown fields, wrong types or duplicate
    list-map keys (structured-merge-diff's typed conversion); nothing for kinds without a schema."""
    kind_name = definition_name(rtype.group, rtype.version, rtype.kind)
    if kind_name is None:
        return
    problems = []
    _typed(body, definitions()[kind_name], '', problems)
    if not problems:
        return
    text = problems[0] if len(problems) == 1 else 'errors:\n  ' + '\n  '.join(problems)
    meta = body.get('metadata') or {}
    where = '{0}/{1}; {2}/{3}, Kind={4}'.format(meta.get('namespace', namespace or '') or '', meta.get('name', name),
                                              rtype.group, rtype.version, rtype.kind)
    raise ApiError(500, '', 'failed to create typed patch object ({0}): {1}'.format(where, text))


def _typed(value, schema, path, problems):
    if value is None:
        return
    name, target = resolved(schema)
    if name in (INT_OR_STRING, QUANTITY) or target.get('format') == 'int-or-string':
        if isinstance(value, (dict, list, bool)):
            problems.append('{0}: expected string, got {1}'.format(path, _smd_shown(value)))
        return
    kind = target.get('type') or ('object' if target.get('properties') is not None else None)
    if kind == 'object':
        if not isinstance(value, dict):
            problems.append('{0}: expected map, got {1}'.format(path, _smd_shown(value)))
            return
        properties = target.get('properties')
        values = target.get('additionalProperties')
        for key, sub in value.items():
            where = '{0}.{1}'.format(path, key)
            if properties is not None and key in properties:
                _typed(sub, properties[key], where, problems)
            elif isinstance(values, dict):
                _typed(sub, values, where, problems)
            elif properties is not None:
                problems.append('{0}: field not declared in schema'.format(where))
    elif kind == 'array':
        if not isinstance(value, list):
            problems.append('{0}: expected list, got {1}'.format(path, _smd_shown(value)))
            return
        keys = target.get('x-kubernetes-list-map-keys') if target.get('x-kubernetes-list-type') == 'map' else None
        seen = set()
        for index, item in enumerate(value):
            element = '[{0}]'.format(index)
            if keys and isinstance(item, dict):
                element = '[{0}]'.format(','.join('{0}={1}'.format(k, json.dumps(item[k])) for k in keys if k in item))
                if element in seen:
                    problems.append('{0}: duplicate entries for key {1}'.format(path, element))
                    continue
                seen.add(element)
            elif target.get('x-kubernetes-list-type') == 'set':
                element = '[={0}]'.format(json.dumps(item))
            _typed(item, target.get('items') or {}, path + element, problems)
    elif kind in ('integer', 'number'):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            problems.append('{0}: expected numeric (int or float), got {1}'.format(path, _go_name(value)))
    elif kind == 'string':
        if not isinstance(value, str):
            problems.append('{0}: expected string, got {1}'.format(path, _smd_shown(value)))
    elif kind == 'boolean':
        if not isinstance(value, bool):
            problems.append('{0}: expected boolean, got {1}'.format(path, _smd_shown(value)))


def _go_name(value):
    return {bool: 'bool', int: 'int64', float: 'float64', str: 'string', list: '[]interface {}',
            dict: 'map[string]interface {}'}.get(type(value), 'nil')


def _smd_shown(value):
    if isinstance(value, bool):
        shown = 'true' if value else 'false'
    elif isinstance(value, str):
        shown = json.dumps(value)
    elif isinstance(value, (int, float)):
        shown = str(value)
    else:
        shown = _go_name(value)
    return '&value.valueUnstructured{{Value:{0}}}'.format(shown)
