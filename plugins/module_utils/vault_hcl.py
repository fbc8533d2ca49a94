# -*- coding: utf-8 -*-
# Copyright: ephemeral.castle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Vault ACL policies (HCL or JSON) read into a canonical form, so two texts that mean the same to Vault compare
equal whatever their whitespace, comments, order or quoting. PRIVATE to the collection."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json


class PolicySyntaxError(ValueError):
    """The policy text is not HCL (or JSON) this parser reads."""


_PUNCT = '{}[]=,:'


def _hcl_tokens(text):
    """(kind, value) tokens of HCL: str, word, num, or a punctuation character. Comments are dropped."""
    i, size = 0, len(text)
    while i < size:
        char = text[i]
        if char.isspace():
            i += 1
        elif char == '#' or text.startswith('//', i):
            end = text.find('\n', i)
            i = size if end < 0 else end + 1
        elif text.startswith('/*', i):
            end = text.find('*/', i + 2)
            if end < 0:
                raise PolicySyntaxError('unterminated /* comment')
            i = end + 2
        elif char == '"':
            value, i = _hcl_string(text, i + 1)
            yield 'str', value
        elif text.startswith('<<', i):
            value, i = _hcl_heredoc(text, i + 2)
            yield 'str', value
        elif char in _PUNCT:
            yield char, char
            i += 1
        elif char.isdigit() or (char == '-' and i + 1 < size and text[i + 1].isdigit()):
            start = i
            i += 1
            while i < size and (text[i].isdigit() or text[i] == '.'):
                i += 1
            number = text[start:i]
            try:
                yield 'num', float(number) if '.' in number else int(number)
            except ValueError:
                raise PolicySyntaxError('{0!r} is not a number'.format(number))
        elif char.isalpha() or char == '_':
            start = i
            while i < size and (text[i].isalnum() or text[i] in '_-.'):
                i += 1
            yield 'word', text[start:i]
        else:
            raise PolicySyntaxError('unexpected {0!r} at offset {1}'.format(char, i))


_ESCAPES = {'n': '\n', 't': '\t', 'r': '\r', '"': '"', '\\': '\\'}


def _hcl_string(text, i):
    out = []
    while i < len(text):
        char = text[i]
        if char == '"':
            return ''.join(out), i + 1
        if char == '\\' and i + 1 < len(text):
            out.append(_ESCAPES.get(text[i + 1], '\\' + text[i + 1]))
            i += 2
            continue
        if char == '\n':
            break
        out.append(char)
        i += 1
    raise PolicySyntaxError('unterminated string')


def _hcl_heredoc(text, i):
    indent = text.startswith('-', i)
    i += 1 if indent else 0
    end = text.find('\n', i)
    marker = text[i:end].strip() if end >= 0 else ''
    if not marker:
        raise PolicySyntaxError('heredoc without a marker')
    lines, pos = [], end + 1
    while pos <= len(text):
        nxt = text.find('\n', pos)
        line = text[pos:] if nxt < 0 else text[pos:nxt]
        if line.strip() == marker:
            body = [line.lstrip() for line in lines] if indent else lines
            return '\n'.join(body) + ('\n' if body else ''), (len(text) if nxt < 0 else nxt + 1)
        lines.append(line)
        if nxt < 0:
            break
        pos = nxt + 1
    raise PolicySyntaxError('unterminated heredoc ' + marker)


class _HclParser(object):
    def __init__(self, text):
        self.tokens = list(_hcl_tokens(text))
        self.pos = 0

    def peek(self):
        return self.tokens[self.pos] if self.pos < len(self.tokens) else (None, None)

    def take(self, *kinds):
        kind, value = self.peek()
        if kind not in kinds:
            raise PolicySyntaxError('expected {0}, found {1!r}'.format(' or '.join(repr(kind) for kind in kinds), value if kind else 'the end'))
        self.pos += 1
        return value

    def body(self, closing=None):
        """Attributes and blocks up to `closing` (or the end): a list of (key, labels, value) items."""
        items = []
        while self.peek()[0] != closing:
            key = self.take('word', 'str')
            if self.peek()[0] in ('=', ':'):
                self.pos += 1
                items.append((key, None, self.value()))
            else:
                labels = []
                while self.peek()[0] in ('str', 'word'):
                    labels.append(self.take('str', 'word'))
                self.take('{')
                items.append((key, tuple(labels), self.body('}')))
                self.take('}')
            if self.peek()[0] == ',':
                self.pos += 1
        return items

    def value(self):
        kind, value = self.peek()
        if kind in ('str', 'num'):
            self.pos += 1
            return value
        if kind == 'word':
            self.pos += 1
            return {'true': True, 'false': False, 'null': None}.get(value, value)
        if kind == '[':
            self.pos += 1
            values = []
            while self.peek()[0] != ']':
                values.append(self.value())
                if self.peek()[0] != ']':
                    self.take(',')
            self.take(']')
            return values
        if kind == '{':
            self.pos += 1
            items = self.body('}')
            self.take('}')
            return items
        raise PolicySyntaxError('expected a value, found {0!r}'.format(value if kind else 'the end'))


def _canonical(value):
    """Items to sorted, JSON-able structures: attribute order never matters, lists of scalars are sets."""
    if isinstance(value, list) and all(isinstance(item, tuple) for item in value):
        attributes, blocks = {}, []
        for key, labels, inner in value:
            if labels is None:
                attributes[key] = _canonical(inner)
            else:
                blocks.append([key, list(labels), _canonical(inner)])
        blocks.sort(key=lambda block: json.dumps(block, sort_keys=True))
        return {'attributes': attributes, 'blocks': blocks}
    if isinstance(value, dict):
        return _canonical([(key, None, inner) for key, inner in value.items()])
    if isinstance(value, list):
        items = [_canonical(item) for item in value]
        if all(not isinstance(item, (dict, list)) for item in items):
            return sorted(set(items), key=lambda item: (str(type(item)), str(item)))
        return items
    return value


def _json_policy(found):
    """A JSON policy ({"path": {"a/*": {...}}}) as the items its HCL form parses to."""
    items = []
    for key, inner in found.items():
        if key == 'path' and isinstance(inner, dict):
            for label, body in inner.items():
                items.append(('path', (label,), [(name, None, value) for name, value in (body or {}).items()]))
        else:
            items.append((key, None, inner))
    return items


def normalise_policy(text):
    """Canonical JSON of a policy (HCL or JSON): equal for policies that differ only in whitespace,
    comments, attribute and block order, string quoting/heredocs, and the order or repetition of list
    entries such as capabilities. Raises PolicySyntaxError on text it cannot read."""
    stripped = text.strip()
    if stripped.startswith('{'):
        try:
            found = json.loads(stripped)
        except ValueError as exc:
            raise PolicySyntaxError('invalid JSON policy: {0}'.format(exc))
        items = _json_policy(found) if isinstance(found, dict) else None
        if items is None:
            raise PolicySyntaxError('a JSON policy is an object')
    else:
        items = _HclParser(text).body()
    return json.dumps(_canonical(items), sort_keys=True)


def policies_equal(first, second):
    """Whether two policy texts mean the same to Vault, as far as normalise_policy can tell; texts it cannot
    parse are compared line by line with surrounding whitespace and blank lines ignored."""
    try:
        return normalise_policy(first) == normalise_policy(second)
    except PolicySyntaxError:
        def lines(text):
            return [line.strip() for line in text.splitlines() if line.strip()]
        return lines(first) == lines(second)
