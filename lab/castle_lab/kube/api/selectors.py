"""Label and field selectors as list and watch requests give them."""

import re

SET_TERM = re.compile(r'^\s*(\S+?)\s+(in|notin)\s+\(([^)]*)\)\s*$')
EQUALITY = re.compile(r'^\s*([^!=\s]+)\s*(==|=|!=)\s*([-A-Za-z0-9_./]*)\s*$')
EXISTS = re.compile(r'^\s*(!?)\s*([^!=\s()]+)\s*$')


class SelectorError(ValueError):
    """A selector the API refuses (400 BadRequest)."""


def _split_terms(text):
    """Split on commas that are not inside a parenthesised value set."""
    terms, depth, current = [], 0, ''
    for char in text:
        if char == '(':
            depth += 1
        elif char == ')':
            depth -= 1
        if char == ',' and depth == 0:
            terms.append(current)
            current = ''
        else:
            current += char
    if depth:
        raise SelectorError('unbalanced parentheses in {0!r}'.format(text))
    terms.append(current)
    return [t for t in terms if t.strip()]


def parse_labels(text):
    """A label selector as a list of (key, operator, values); operators: in, notin, exists, !exists."""
    requirements = []
    for term in _split_terms(text or ''):
        found = SET_TERM.match(term)
        if found:
            values = {v.strip() for v in found.group(3).split(',') if v.strip()}
            requirements.append((found.group(1), found.group(2), values))
            continue
        found = EQUALITY.match(term)
        if found:
            key, operator, value = found.groups()
            requirements.append((key, 'notin' if operator == '!=' else 'in', {value}))
            continue
        found = EXISTS.match(term)
        if found:
            requirements.append((found.group(2), '!exists' if found.group(1) else 'exists', set()))
            continue
        raise SelectorError('unable to parse requirement: {0!r}'.format(term.strip()))
    return requirements


def labels_match(requirements, labels):
    labels = labels or {}
    for key, operator, values in requirements:
        present = key in labels
        if operator == 'in' and (not present or labels[key] not in values):
            return False
        if operator == 'notin' and present and labels[key] in values:
            return False
        if operator == 'exists' and not present:
            return False
        if operator == '!exists' and present:
            return False
    return True


FIELDS = {'metadata.name': lambda obj: obj['metadata'].get('name', ''),
          'metadata.namespace': lambda obj: obj['metadata'].get('namespace', '')}


def parse_fields(text, extra=()):
    """A field selector as a list of (field, equal, value); only metadata.name/namespace and `extra` fields."""
    requirements = []
    for term in _split_terms(text or ''):
        found = EQUALITY.match(term)
        if not found:
            raise SelectorError('invalid selector: {0!r}; can\'t understand {1!r}'.format(text, term))
        name, operator, value = found.groups()
        if name not in FIELDS and name not in extra:
            raise SelectorError('field label not supported: {0}'.format(name))
        requirements.append((name, operator != '!=', value))
    return requirements


def field_value(obj, name):
    if name in FIELDS:
        return FIELDS[name](obj)
    node = obj
    for part in name.split('.'):
        node = node.get(part) if isinstance(node, dict) else None
    return '' if node is None else str(node)


def fields_match(requirements, obj):
    return all((field_value(obj, name) == value) == equal for name, equal, value in requirements)


SELECTOR_OPERATORS = {'In': 'in', 'NotIn': 'notin', 'Exists': 'exists', 'DoesNotExist': '!exists'}


def selector_matches(selector, labels):
    """Whether a LabelSelector (matchLabels, matchExpressions) selects these labels."""
    requirements = [(key, 'in', [value]) for key, value in (selector.get('matchLabels') or {}).items()]
    for expression in selector.get('matchExpressions') or []:
        requirements.append((expression.get('key'), SELECTOR_OPERATORS.get(expression.get('operator'), 'in'),
                             expression.get('values') or []))
    return labels_match(requirements, labels)
