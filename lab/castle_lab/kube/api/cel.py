"""Custom resources' `x-kubernetes-validations` rules, compiled and evaluated with Google's CEL runtime
(cel-expr-python) the way apiextensions-apiserver pkg/apiserver/schema/cel does it (compilation.go, validation.go):
`self` is the value the rule sits on, `oldSelf` its previous value (a rule that uses it runs on updates only, unless
optionalOldSelf), a false result reports message, messageExpression or "failed rule: <rule>" under fieldPath and reason.

`self` is declared dynamic here, not typed from the schema, so a rule naming a field the schema lacks compiles and
fails when evaluated instead of at CRD creation."""

import dataclasses
import functools
import json
import re

from cel_expr_python import cel
from cel_expr_python.ext import ext_bindings, ext_optional, ext_strings

SELF, OLD_SELF = 'self', 'oldSelf'
# An optionalOldSelf rule is evaluated inside a binding that turns this list (empty or the old value) into an optional.
OLD_SELVES = 'castleOldSelves'
REASONS = {'FieldValueForbidden': 'Forbidden', 'FieldValueRequired': 'Required value',
           'FieldValueDuplicate': 'Duplicate value'}
MAX_MESSAGE = 5 * 1024  # MaxEvaluatedMessageExpressionSizeBytes
REASONS_SUPPORTED = ('FieldValueDuplicate', 'FieldValueForbidden', 'FieldValueInvalid', 'FieldValueRequired')
BLOCKING = ('FieldValueNotSupported', 'FieldValueRequired', 'FieldValueTooLong', 'FieldValueTooMany',
            'FieldValueTypeInvalid')
NOT_CHECKED = ('<nil>', 'Invalid value: null: some validation rules were not checked because the object was invalid; '
               'correct the existing errors to complete validation', 'FieldValueInvalid')


@functools.cache
def _env(*names):
    """The base CEL environment Kubernetes offers rules (strings, optionals, bindings) with these variables."""
    variables = {name: cel.Type.List(cel.Type.DYN) if name == OLD_SELVES else cel.Type.DYN for name in names}
    return cel.NewEnv(variables=variables, extensions=[ext_strings.ExtStrings(), ext_optional.ExtOptional(),
                                                       ext_bindings.ExtBindings()])


def _compile(expression, *names):
    """(ast, '') or (None, the compiler's issues as cel-go prints them: without the status code around them)."""
    try:
        return _env(*names).compile(expression), ''
    except RuntimeError as exc:
        return None, re.sub(r' \[[A-Z_]+\]$', '', re.sub(r'^[A-Z_]+: ', '', str(exc)))


@dataclasses.dataclass
class Compiled:
    program: object = None
    error: str = ''
    uses_old_self: bool = False
    message: object = None
    message_error: str = ''


@functools.lru_cache(maxsize=4096)
def compile_rule(rule, message_expression='', optional_old_self=False):
    """One rule as the API server compiles it; errors carry the server's wording."""
    result = Compiled()
    if not rule.strip():
        return result
    ast, issues = _compile(rule, SELF)
    if re.search(r"undeclared reference to 'oldSelf[.']", issues):
        result.uses_old_self = True
        ast, issues = _compile(rule, SELF, OLD_SELF)
    if issues:
        result.error = 'compilation failed: ' + issues
        return result
    if ast.return_type() not in (cel.Type.BOOL, cel.Type.DYN):
        result.error = 'cel expression must evaluate to a bool'
        return result
    result.program = ast
    if result.uses_old_self and optional_old_self:
        # the rule on lines of its own: a trailing // comment in it ends there
        result.program = _compile('cel.bind({0}, size({1}) > 0 ? optional.of({1}[0]) : optional.none(), (\n{2}\n))'
                                  .format(OLD_SELF, OLD_SELVES, rule), SELF, OLD_SELF, OLD_SELVES)[0]
    if message_expression:
        message, issues = _compile(message_expression, SELF, OLD_SELF)
        if issues:
            result.message_error = 'messageExpression compilation failed: ' + issues
        elif message.return_type() not in (cel.Type.STRING, cel.Type.DYN):
            result.message_error = 'messageExpression must evaluate to a string'
        else:
            result.message = message
    return result


def rule_errors(schema, path):
    """[(field, message, cause reason)] of the rules in a CRD version's schema the server refuses, as CRD
    validation reports them; path is where the schema sits (spec.versions[0].schema.openAPIV3Schema)."""
    found = []
    for where, node, uncorrelatable in _nodes(schema, path, None):
        rules = _rule_list(node)
        malformed = [cause for index, rule in enumerate(rules)
                     for cause in _rule_shape(rule, node, '{0}.x-kubernetes-validations[{1}]'.format(where, index))]
        found += malformed
        for index, rule in enumerate([] if malformed else rules):  # the server compiles well-formed rules only
            found += _compile_errors(rule, '{0}.x-kubernetes-validations[{1}]'.format(where, index), uncorrelatable)
    return found


def _compile_errors(rule, prefix, uncorrelatable):
    compiled = compile_rule(rule['rule'], rule.get('messageExpression', ''), bool(rule.get('optionalOldSelf')))
    shown = _go_rule(rule)
    found = []
    if compiled.error:
        found.append((prefix + '.rule', 'Invalid value: {0}: {1}'.format(shown, compiled.error), 'FieldValueInvalid'))
    if compiled.message_error:
        found.append((prefix + '.messageExpression', 'Invalid value: {0}: {1}'.format(shown, compiled.message_error),
                      'FieldValueInvalid'))
    if compiled.uses_old_self and uncorrelatable:
        found.append((prefix + '.rule', 'Invalid value: {0}: oldSelf cannot be used on the uncorrelatable portion of '
                                        'the schema within {1}'.format(_quoted(rule['rule']), uncorrelatable),
                      'FieldValueInvalid'))
    elif not compiled.error and not compiled.uses_old_self and 'optionalOldSelf' in rule:
        found.append((prefix + '.optionalOldSelf', 'Invalid value: {0}: may not be set if oldSelf is not used in '
                                                   'rule'.format(str(bool(rule['optionalOldSelf'])).lower()),
                      'FieldValueInvalid'))
    return found


def _rule_shape(rule, node, prefix):
    """What the server refuses in a rule before compiling it."""
    found = []
    text, message, field_path = rule.get('rule', ''), rule.get('message', ''), rule.get('fieldPath', '')
    if not text.strip():
        found.append((prefix + '.rule', 'Required value: rule is not specified', 'FieldValueRequired'))
    elif message and not message.strip():
        found.append((prefix + '.message', 'Invalid value: {0}: message must be non-empty if specified'.format(
            _quoted(message)), 'FieldValueInvalid'))
    elif re.search(r'[\n\r]', message.strip()):
        found.append((prefix + '.message', 'Invalid value: {0}: message must not contain line breaks'.format(
            _quoted(message)), 'FieldValueInvalid'))
    elif re.search(r'[\n\r]', text.strip()) and not message.strip():
        found.append((prefix + '.message', 'Required value: message must be specified if rule contains line breaks',
                      'FieldValueRequired'))
    if rule.get('messageExpression') and not rule['messageExpression'].strip():
        found.append((prefix + '.messageExpression', 'Required value: messageExpression must be non-empty if '
                                                     'specified', 'FieldValueRequired'))
    if 'reason' in rule and rule['reason'] not in REASONS_SUPPORTED:
        found.append((prefix + '.reason', 'Unsupported value: {0}: supported values: {1}'.format(
            _quoted(rule['reason']), ', '.join(_quoted(r) for r in REASONS_SUPPORTED)), 'FieldValueNotSupported'))
    if field_path and not field_path.strip():
        found.append((prefix + '.fieldPath', 'Invalid value: {0}: fieldPath must be non-empty if specified'.format(
            _quoted(field_path)), 'FieldValueInvalid'))
    if re.search(r'[\n\r]', field_path):
        found.append((prefix + '.fieldPath', 'Invalid value: {0}: fieldPath must not contain line breaks'.format(
            _quoted(field_path)), 'FieldValueInvalid'))
    if field_path and _field_path(field_path, node) is None:
        found.append((prefix + '.fieldPath', 'Invalid value: {0}: fieldPath must be a valid path'.format(
            _quoted(field_path)), 'FieldValueInvalid'))
    return found


def _quoted(text):
    """A string as Go's %q prints it."""
    return json.dumps(text, ensure_ascii=False)


def _nodes(schema, path, uncorrelatable):
    """(path, schema node, the path of the list above whose items no old value can be matched to, or None)."""
    if not isinstance(schema, dict):
        return
    yield path, schema, uncorrelatable
    properties = schema.get('properties')
    for name, sub in (properties.items() if isinstance(properties, dict) else ()):
        yield from _nodes(sub, '{0}.properties[{1}]'.format(path, name), uncorrelatable)
    if isinstance(schema.get('items'), dict):
        below = uncorrelatable or (path if schema.get('x-kubernetes-list-type') != 'map' else None)
        yield from _nodes(schema['items'], path + '.items', below)
    if isinstance(schema.get('additionalProperties'), dict):
        yield from _nodes(schema['additionalProperties'], path + '.additionalProperties', uncorrelatable)
    all_of = schema.get('allOf')
    for index, sub in enumerate(all_of if isinstance(all_of, list) else ()):
        yield from _nodes(sub, '{0}.allOf[{1}]'.format(path, index), uncorrelatable)


def _rule_list(schema):
    """The schema's rules, each with string fields (what a decoder of ValidationRule would have refused is left out)."""
    rules = schema.get('x-kubernetes-validations')
    return [dict(r, rule=r.get('rule', '')) for r in rules if isinstance(r, dict) and all(
        isinstance(r.get(k, ''), str) for k in ('rule', 'message', 'messageExpression', 'fieldPath', 'reason'))] \
        if isinstance(rules, list) else []


def _go_rule(rule):
    """A ValidationRule as Go's %#v prints it in a field error."""
    def text(key):
        return '"{0}"'.format(str(rule.get(key, '')).replace('\\', '\\\\').replace('"', '\\"').replace('\n', '\\n'))
    reason = '(*apiextensions.FieldValueErrorReason)(nil)' if rule.get('reason') is None else \
        '(*apiextensions.FieldValueErrorReason)({0})'.format(text('reason'))
    optional = '(*bool)(nil)' if rule.get('optionalOldSelf') is None else '(*bool)({0})'.format(
        str(bool(rule['optionalOldSelf'])).lower())
    return ('apiextensions.ValidationRule{{Rule:{0}, Message:{1}, MessageExpression:{2}, Reason:{3}, '
            'FieldPath:{4}, OptionalOldSelf:{5}}}'.format(text('rule'), text('message'), text('messageExpression'),
                                                          reason, text('fieldPath'), optional))


def validate(schema, obj, old=None, blocking=(), warnings=None):
    """[(field, message, cause reason)] of the rules obj fails; old is the stored object on update. Skipped,
    with the server's note, when the schema check already found errors that stop CEL (blocking: their reasons).
    A failure on a value the update leaves unchanged only warns (ratcheting): its text goes to warnings."""
    if not _has_rules(schema):
        return []
    if any(reason in BLOCKING for reason in blocking):
        return [NOT_CHECKED]
    found = []
    ratcheted = []
    _walk(schema, obj, old, '', (found, ratcheted), equal=False, root=True)
    if warnings is not None:
        warnings.extend('{0}: {1}'.format(field, message) for field, message, _reason in ratcheted)
    return found


def _has_rules(schema):
    return any(_rule_list(node) for _path, node, _list in _nodes(schema, '', None))


def _walk(schema, value, old, path, found, equal, root=False):
    if value is None or not isinstance(schema, dict):
        return
    if _rule_list(schema):
        _check(schema, value, old, path, found, equal, root)
    all_of = schema.get('allOf')
    for sub in (all_of if isinstance(all_of, list) else ()):
        _walk(sub, value, old, path, found, equal, root)
    if isinstance(value, dict):
        correlated = isinstance(old, dict) and schema.get('x-kubernetes-map-type') != 'atomic'
        properties = schema.get('properties')
        properties = properties if isinstance(properties, dict) else {}
        additional = schema.get('additionalProperties')
        for key, sub in value.items():
            old_sub = old.get(key) if correlated else None
            sub_equal = old_sub is not None and old_sub == sub if correlated else equal
            if isinstance(additional, dict):
                _walk(additional, sub, old_sub, '{0}[{1}]'.format(path, key), found, sub_equal)
            if key in properties:
                _walk(properties[key], sub, old_sub, '{0}.{1}'.format(path, key) if path else key, found, sub_equal)
    elif isinstance(value, list) and isinstance(schema.get('items'), dict):
        keys = schema.get('x-kubernetes-list-map-keys') or []
        by_key = {}
        if schema.get('x-kubernetes-list-type') == 'map' and keys and isinstance(old, list):
            by_key = {tuple(item.get(k) for k in keys): item for item in old if isinstance(item, dict)}
        for index, item in enumerate(value):
            old_item = by_key.get(tuple(item.get(k) for k in keys)) if by_key and isinstance(item, dict) else None
            item_equal = old_item == item if by_key else equal
            _walk(schema['items'], item, old_item, '{0}[{1}]'.format(path, index), found, item_equal)


def _check(schema, value, old, path, found, equal, root):
    errors, ratcheted = found
    if root:
        # At a resource's root, rules see apiVersion, kind and only the name of the metadata.
        value = _root_view(value)
        old = None if old is None else _root_view(old)
    for rule in _rule_list(schema):
        compiled = compile_rule(rule['rule'], rule.get('messageExpression', ''), bool(rule.get('optionalOldSelf')))
        failed = _failure(schema, rule, compiled, value, old, path)
        if failed:
            cause, false_result = failed
            # ratcheting: a value the update leaves as it was only warns, unless the rule compares with oldSelf
            (ratcheted if false_result and equal and not compiled.uses_old_self else errors).append(cause)


def _root_view(obj):
    return dict(obj, metadata={k: v for k, v in (obj.get('metadata') or {}).items() if k in ('name', 'generateName')})


def _failure(schema, rule, compiled, value, old, path):
    """((field, message, cause reason), whether the rule gave false rather than an error) of a rule the value
    fails, or None."""
    kind = schema.get('type', '')
    shown = (rule.get('message') or '').strip() or rule['rule'].strip()
    field = path or '<nil>'
    if compiled.error:
        return (field, 'Invalid value: "{0}": rule compile error: {1}'.format(kind, compiled.error),
                'FieldValueInvalid'), False
    optional = bool(rule.get('optionalOldSelf'))
    if compiled.program is None or (compiled.uses_old_self and old is None and not optional):
        return None
    data = {SELF: value}
    if compiled.uses_old_self:
        data[OLD_SELVES if optional else OLD_SELF] = ([] if old is None else [old]) if optional else old
    try:
        result = compiled.program.eval(data=data)
        failure = result.value() if result.type() == cel.Type.ERROR else None
    except (RuntimeError, TypeError, ValueError) as exc:
        failure = str(exc)
    if failure is not None:
        return (field, 'Invalid value: "{0}": {1}'.format(kind, _runtime_error(failure, shown)),
                'FieldValueInvalid'), False
    if result.value() is True:
        return None
    where = _field_path(rule.get('fieldPath', ''), schema)
    if where:
        field = '{0}.{1}'.format(path, where) if path else where
    detail = (_message(compiled, data) if compiled.message else '') or (
        rule['message'].strip() if rule.get('message') else 'failed rule: ' + shown)
    reason = rule.get('reason') or 'FieldValueInvalid'
    if reason == 'FieldValueDuplicate':
        return (field, 'Duplicate value: "{0}"'.format(kind), reason), True
    if reason in REASONS:
        return (field, '{0}: {1}'.format(REASONS[reason], detail), reason), True
    return (field, 'Invalid value: "{0}": {1}'.format(kind, detail), 'FieldValueInvalid'), True


def _message(compiled, data):
    """messageExpression's text; empty when it fails or gives no usable line (the rule's message is used), and
    for an optionalOldSelf rule, whose oldSelf is bound only inside the rule."""
    if OLD_SELVES in data:
        return ''
    try:
        result = compiled.message.eval(data=data)
    except (RuntimeError, TypeError, ValueError):
        return ''
    if result.type() != cel.Type.STRING:
        return ''
    text = result.value().strip()
    return '' if not text or '\n' in text or len(text) > MAX_MESSAGE else text


def _runtime_error(text, shown):
    """An evaluation error in cel-go's words, as validation.go reports it."""
    text = re.sub(r'^[A-Z_]+: ', '', str(text))
    if text.startswith('No matching overloads'):
        return "'no such overload': call arguments did not match a supported operator, function or macro signature " \
               'for rule: ' + shown
    key = re.match(r'Key not found in map : "(.*)"$', text)
    if key:
        text = 'no such key: ' + key.group(1)
    elif text == 'divide by zero':
        text = 'division by zero'
    return '{0} evaluating rule: {1}'.format(text, shown)


def _field_path(path, schema):
    """fieldPath ('.a.b', ".a['b.c']") as a field error path below the rule's node, or None when it names no
    field of the schema."""
    steps = r"\.([^.\[\]']+)|\['((?:[^'\\]|\\.)*)'\]"
    if not re.fullmatch('(?:{0})+'.format(steps), path or ''):
        return None
    parts = []
    for named, quoted in re.findall(steps, path):
        name = named or re.sub(r'\\(.)', r'\1', quoted)
        if isinstance(schema.get('properties'), dict):
            if name not in schema['properties']:
                return None
            schema = schema['properties'][name]
            parts.append(('.' if parts else '') + name)
        elif isinstance(schema.get('additionalProperties'), dict):
            schema = schema['additionalProperties']
            parts.append('[{0}]'.format(name))
        else:
            return None
    return ''.join(parts)
