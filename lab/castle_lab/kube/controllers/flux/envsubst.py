"""Flux post-build variable substitution: bash-style `${var}` expressions, as kustomize-controller evaluates them.

Only the braced form is expanded (`$var` stays as it is); `$$` is an escape for `$`, so `$${var}` reads `${var}`.
An undefined variable without a default becomes the empty string.
"""

import re

VAR_NAME = re.compile(r'^[_a-zA-Z][_a-zA-Z0-9]*$')
# The expression as Flux documents it (POSIX classes), quoted in its error messages.
VAR_NAME_PATTERN = '^[_[:alpha:]][_[:alpha:][:digit:]]*$'
NAME_AT_START = re.compile(r'[_a-zA-Z][_a-zA-Z0-9]*')
DISABLED = 'kustomize.toolkit.fluxcd.io/substitute'


class SubstitutionError(ValueError):
    """An expression that cannot be evaluated, or a variable name Flux refuses."""


def check_names(variables):
    for name in variables:
        if not VAR_NAME.match(name):
            raise SubstitutionError("'{0}' var name is invalid, must match '{1}'".format(name, VAR_NAME_PATTERN))


def merged_variables(inline, sources):
    """The variables of a Kustomization: later sources override earlier ones, inline values override all.

    Newlines are dropped from values, as Flux does."""
    variables = {}
    for source in list(sources) + [inline or {}]:
        variables.update({key: str(value).replace('\n', '') for key, value in source.items()})
    return variables


def substitution_disabled(obj):
    meta = obj.get('metadata') or {}
    return 'disabled' in ((meta.get('labels') or {}).get(DISABLED), (meta.get('annotations') or {}).get(DISABLED))


def substitute(text, variables):
    """text with every `${...}` expression evaluated against variables."""
    out, index = [], 0
    while index < len(text):
        char = text[index]
        if char == '$' and text.startswith('$$', index):
            out.append('$')
            index += 2
        elif char == '$' and text.startswith('${', index):
            end = _closing_brace(text, index + 2)
            out.append(_evaluate(text[index + 2:end], variables))
            index = end + 1
        else:
            out.append(char)
            index += 1
    return ''.join(out)


def _closing_brace(text, start):
    depth = 1
    for index in range(start, len(text)):
        if text.startswith('${', index):
            depth += 1
        elif text[index] == '}':
            depth -= 1
            if not depth:
                return index
    raise SubstitutionError('missing closing brace')


def _evaluate(expression, variables):
    if expression.startswith('#'):
        return str(len(variables.get(_name(expression[1:], expression), '')))
    name = _name(expression, expression)
    value = variables.get(name)
    rest = expression[len(name):]
    if not rest:
        return value or ''
    for operator, when_empty in ((':=', True), (':-', True), ('=', False), ('-', False)):
        if rest.startswith(operator):
            use_default = value is None or (when_empty and value == '')
            return substitute(rest[len(operator):], variables) if use_default else value
    value = value or ''
    if rest.startswith(':'):
        return _substring(value, rest[1:], expression)
    if rest.startswith('/'):
        return _replace(value, rest[1:], variables)
    cases = {'^^': str.upper, ',,': str.lower, '^': lambda v: v[:1].upper() + v[1:],
             ',': lambda v: v[:1].lower() + v[1:]}
    if rest in cases:
        return cases[rest](value)
    raise SubstitutionError('bad substitution: ${{{0}}}'.format(expression))


def _name(text, expression):
    found = NAME_AT_START.match(text)
    if not found:
        raise SubstitutionError('bad substitution: ${{{0}}}'.format(expression))
    return found.group(0)


def _substring(value, spec, expression):
    parts = spec.split(':')
    try:
        numbers = [int(part.strip()) for part in parts]
    except ValueError:
        raise SubstitutionError('bad substitution: ${{{0}}}'.format(expression)) from None
    start = numbers[0] if numbers[0] >= 0 else max(len(value) + numbers[0], 0)
    if len(numbers) == 1:
        return value[start:]
    return value[start:start + numbers[1]] if numbers[1] >= 0 else value[start:numbers[1]]


def _replace(value, spec, variables):
    replace_all = spec.startswith('/')
    pattern, _sep, replacement = (spec[1:] if replace_all else spec).partition('/')
    pattern, replacement = substitute(pattern, variables), substitute(replacement, variables)
    if not pattern:
        return value
    return value.replace(pattern, replacement) if replace_all else value.replace(pattern, replacement, 1)
