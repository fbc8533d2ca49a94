#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: ephemeral.castle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

DOCUMENTATION = r"""
module: fleet_report
short_description: Write the fleet's Markdown report and its SVG diagram of the mesh topology and the waves
version_added: 0.1.0
description:
  - Renders the fleet into C(fleet.md) and C(fleet.svg) in O(dest). The Markdown lists the machines by role, the
    clusters, the dependency register (workload, current and target host, owner, wave, C(depends_on), stateful,
    critical), the tunnels (flagging those that touch a C(workstation) machine), the drain waves with what
    blocks each, the gate results with every reason and the fleet_check violations with their codes; it embeds
    the diagram.
  - The diagram draws machines and clusters as boxes grouped by role and tunnels as arrows (critical ones
    thick and red, critical ones on a workstation in orange, reverse ones dashed), then the workloads in columns
    by wave with an arrow for each C(depends_on).
  - The results of M(ephemeral.castle.fleet_check), M(ephemeral.castle.fleet_drain_plan) and
    M(ephemeral.castle.fleet_gate) are passed in as registered; the report holds no timestamp, so the same
    inputs write the same bytes and a second run reports no change.
author:
  - ephemeral.castle maintainers (@ephemeral-castle)
extends_documentation_fragment:
  - ephemeral.castle.fleet
  - ephemeral.castle.fleet.ACTION_GROUP
  - ephemeral.castle.attributes
options:
  dest:
    description: Directory to write C(fleet.md) and C(fleet.svg) into; created when missing.
    type: path
    required: true
  title:
    description: Title of the report and of the diagram.
    type: str
    default: Fleet report
  violations:
    description:
      - The C(violations) of M(ephemeral.castle.fleet_check) (each with C(code) and C(message)).
      - When omitted, the report says the fleet was not checked.
    type: list
    elements: dict
  drain_plans:
    description: Results of M(ephemeral.castle.fleet_drain_plan), each with C(machine), C(waves) and C(staying).
    type: list
    elements: dict
    default: []
  gates:
    description: Results of M(ephemeral.castle.fleet_gate), each with C(target), C(passed) and C(reasons).
    type: list
    elements: dict
    default: []
"""

EXAMPLES = r"""
- name: Write the fleet report
  ephemeral.castle.fleet_report:
    src: "{{ fleet_file }}"
    dest: "{{ playbook_dir }}/fleet-report"
    violations: "{{ fleet_rules.violations }}"
    drain_plans: "{{ drains.results }}"
    gates: "{{ gates.results }}"
"""

RETURN = r"""
markdown:
  description: Path of the Markdown report.
  returned: always
  type: str
  sample: /srv/fleet-report/fleet.md
svg:
  description: Path of the SVG diagram.
  returned: always
  type: str
  sample: /srv/fleet-report/fleet.svg
written:
  description: The files that were (or, in check mode, would be) written because their content changed.
  returned: always
  type: list
  elements: str
  sample: [/srv/fleet-report/fleet.md]
"""

import os

from ansible_collections.ephemeral.castle.plugins.module_utils._files import read_text, write_atomic
from ansible_collections.ephemeral.castle.plugins.module_utils.base import CastleError, run_module
from ansible_collections.ephemeral.castle.plugins.module_utils.fleet import LAYER, fleet_of
from ansible_collections.ephemeral.castle.plugins.module_utils.fleet_report import render_markdown, render_svg

PLAN_KEYS = ('machine', 'waves')
GATE_KEYS = ('target', 'passed', 'reasons')


def _complete(name, rows, keys):
    for i, row in enumerate(rows):
        missing = [k for k in keys if k not in row]
        if missing:
            raise CastleError('{0}[{1}] lacks {2}: pass the registered results of the module'.format(
                name, i, ', '.join(missing)))


def run(params, check_mode, diff):
    fleet = fleet_of(params)
    # A loop's skipped items carry no result.
    plans = [p for p in params['drain_plans'] if not p.get('skipped')]
    gates = [g for g in params['gates'] if not g.get('skipped')]
    _complete('drain_plans', plans, PLAN_KEYS)
    _complete('gates', gates, GATE_KEYS)
    _complete('violations', params['violations'] or [], ('code', 'message'))
    dest = params['dest']
    if os.path.exists(dest) and not os.path.isdir(dest):
        raise CastleError('dest: {0} exists and is not a directory'.format(dest))
    files = [(os.path.join(dest, 'fleet.md'),
              render_markdown(fleet, params['title'], params['violations'], plans, gates, 'fleet.svg')),
             (os.path.join(dest, 'fleet.svg'), render_svg(fleet, params['title']))]
    written, diffs = [], []
    for path, text in files:
        before = read_text(path)
        if before == text:
            continue
        written.append(path)
        diffs.append({'before': before or '', 'after': text, 'before_header': path, 'after_header': path})
    if written and not check_mode:
        try:
            os.makedirs(dest, exist_ok=True)
        except OSError as exc:
            raise CastleError('cannot write the report in {0}: {1}'.format(dest, exc))
        for path, text in files:
            if path in written:
                write_atomic(path, text, 0o644)
    result = {'changed': bool(written), 'markdown': files[0][0], 'svg': files[1][0], 'written': written}
    if diff:
        result['diff'] = diffs
    return result


def main():
    module = LAYER.module({'dest': {'type': 'path', 'required': True},
                           'title': {'type': 'str', 'default': 'Fleet report'},
                           'violations': {'type': 'list', 'elements': 'dict'},
                           'drain_plans': {'type': 'list', 'elements': 'dict', 'default': []},
                           'gates': {'type': 'list', 'elements': 'dict', 'default': []}})
    run_module(module, lambda: run(module.params, module.check_mode, module._diff))


if __name__ == '__main__':
    main()
