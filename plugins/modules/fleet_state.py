#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: ephemeral.castle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

DOCUMENTATION = r"""
module: fleet_state
short_description: Set machines' states in a fleet file, keeping its comments and layout
version_added: 0.1.0
description:
  - Sets the C(state) of machines of a fleet file (V(active), V(draining), V(drained), V(wiped), V(planned)),
    as the phoenix playbook does when a machine is wiped and its successor takes over.
  - Edits the file in place with a round-trip YAML parser, so comments, key order and the other keys stay as
    they were; only the C(state) lines of the named machines change (or are added, when a machine had none).
  - The edited fleet is validated before it is written; an edit that would make it invalid changes nothing.
  - Supports check mode and diff (the file's text before and after).
requirements:
  - ruamel.yaml (ansible-lint and molecule bring it; otherwise C(pip install ruamel.yaml))
author:
  - ephemeral.castle maintainers (@ephemeral-castle)
extends_documentation_fragment:
  - ephemeral.castle.attributes
options:
  src:
    description: Path of the fleet file to edit, on the host the module runs on.
    type: path
    required: true
  states:
    description:
      - Machine name to its new state. Every name must be a machine of the fleet.
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: pve-old is wiped and reborn as castle-2
  ephemeral.castle.fleet_state:
    src: "{{ fleet_file }}"
    states:
      pve-old: wiped
      castle-2: active
"""

RETURN = r"""
changed_machines:
  description: The machines whose state changed, each with its state before and after.
  returned: always
  type: dict
  sample: {"pve-old": {"before": "draining", "after": "wiped"}}
"""

import io
import os
import traceback

from ansible_collections.ephemeral.castle.plugins.module_utils._files import write_atomic
from ansible_collections.ephemeral.castle.plugins.module_utils.base import CastleError, Layer, run_module
from ansible_collections.ephemeral.castle.plugins.module_utils.fleet import FleetError, load
from ansible_collections.ephemeral.castle.plugins.module_utils.fleet_schema import STATES

try:
    from ruamel.yaml import YAML
    HAS_RUAMEL = True
    RUAMEL_ERROR = None
except ImportError:
    HAS_RUAMEL = False
    RUAMEL_ERROR = traceback.format_exc()


def edit(text, states, source):
    """The fleet file's text with `states` applied, and what changed; raises FleetError on a bad edit."""
    fleet = load(text, source)
    known = set(m['name'] for m in fleet['machines'])
    unknown = sorted(set(states) - known)
    if unknown:
        raise FleetError(source, ['states: {0} {1} not a machine of the fleet (machines: {2})'.format(
            ', '.join(unknown), 'is' if len(unknown) == 1 else 'are', ', '.join(sorted(known)))])
    bad = sorted('{0}: {1!r}'.format(name, state) for name, state in states.items() if state not in STATES)
    if bad:
        raise FleetError(source, ['states: expected one of {0}, got {1}'.format(', '.join(STATES), ', '.join(bad))])
    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 4096
    yaml.indent(mapping=2, sequence=4, offset=2)
    doc = yaml.load(text)
    changed = {}
    for row in doc['fleet']['machines']:
        wanted = states.get(row.get('name'))
        before = row.get('state', 'active')
        if wanted is not None and before != wanted:
            row['state'] = wanted
            changed[row['name']] = {'before': before, 'after': wanted}
    if not changed:
        return text, changed
    out = io.StringIO()
    yaml.dump(doc, out)
    load(out.getvalue(), source)  # the edited fleet must still validate
    return out.getvalue(), changed


def run(params, check_mode, diff):
    path = params['src']
    try:
        with open(path, encoding='utf-8') as handle:
            text = handle.read()
    except OSError as exc:
        raise CastleError('cannot read the fleet file {0}: {1}'.format(path, exc.strerror or exc))
    new_text, changed = edit(text, {str(k): v for k, v in params['states'].items()}, path)
    result = {'changed': bool(changed), 'changed_machines': changed}
    if changed and diff:
        result['diff'] = {'before': text, 'after': new_text, 'before_header': path, 'after_header': path}
    if changed and not check_mode:
        write_atomic(path, new_text, os.stat(path).st_mode & 0o7777)
    return result


def main():
    module = Layer(requires=('ruamel.yaml', HAS_RUAMEL, RUAMEL_ERROR)).module(
        {'src': {'type': 'path', 'required': True}, 'states': {'type': 'dict', 'required': True}})
    run_module(module, lambda: run(module.params, module.check_mode, module._diff))


if __name__ == '__main__':
    main()
