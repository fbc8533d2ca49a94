# -*- coding: utf-8 -*-
# Copyright: ephemeral.castle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""OpenClaw's JSON config file (~/.openclaw/openclaw.json) as data: read, merge and render it."""

import copy
import json

from ansible_collections.ephemeral.castle.plugins.module_utils.base import CastleError


class OpenClawConfigError(CastleError):
    """The config file cannot be read or merged; the message names the file or the key."""


def render(data):
    """The one formatting the collection writes: 2-space indent, key order kept, trailing newline."""
    return json.dumps(data, indent=2, ensure_ascii=False) + '\n'


def parse(text, path):
    if not text.strip():
        return {}
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise OpenClawConfigError(
            '{0} is not plain JSON ({1}); comments and other JSON5 syntax cannot be merged safely, '
            'rewrite it with "openclaw config set" or remove them'.format(path, exc))
    if not isinstance(data, dict):
        raise OpenClawConfigError('{0} holds a JSON {1}, not an object'.format(path, type(data).__name__))
    return data


def read(path):
    """(text, data) of the file; (None, {}) when it does not exist."""
    try:
        with open(path, encoding='utf-8') as handle:
            text = handle.read()
    except FileNotFoundError:
        return None, {}
    except (IOError, OSError) as exc:
        raise OpenClawConfigError('cannot read {0}: {1}'.format(path, exc))
    return text, parse(text, path)


def merge(current, patch, where=''):
    """A copy of `current` with `patch` merged in: objects merge key by key (existing keys keep their place,
    new ones go last), any other value replaces, None removes the key."""
    result = copy.deepcopy(current)
    for key, value in patch.items():
        dotted = '{0}.{1}'.format(where, key) if where else key
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            below = result.get(key)
            if below is not None and not isinstance(below, dict):
                raise OpenClawConfigError('{0} is a {1} in the file, the merge gives it an object'.format(
                    dotted, type(below).__name__))
            result[key] = merge(below or {}, value, dotted)
        else:
            result[key] = copy.deepcopy(value)
    return result


def changed_keys(before, after, where=''):
    """Dotted paths whose value differs between two objects (for the module's result)."""
    keys = []
    for key in list(before) + [k for k in after if k not in before]:
        dotted = '{0}.{1}'.format(where, key) if where else key
        old, new = before.get(key), after.get(key)
        if isinstance(old, dict) and isinstance(new, dict):
            keys.extend(changed_keys(old, new, dotted))
        elif key not in before or key not in after or old != new:
            keys.append(dotted)
    return keys
