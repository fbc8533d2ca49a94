#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: ephemeral.castle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

DOCUMENTATION = r"""
module: fleet_drain_plan
short_description: The ordered waves of workloads that must leave a machine, with what blocks each wave
version_added: 0.1.0
description:
  - For O(machine) (a machine, a cluster or a cluster node of the fleet), the workloads whose current host it
    is and whose target host is elsewhere, grouped by C(wave) in ascending order (by name within a wave).
  - For each wave, what still blocks it. A workload without a target host; a target that is a C(frozen) or
    C(workstation) machine, or one that is C(draining), C(drained) or C(wiped); a workload in a dependency
    cycle; and every workload that depends on one in the wave and has not reached its target host yet (a
    dependency moves only after its dependents).
  - Workloads that stay on the machine (it is their target too) are listed apart; they keep it from being drained.
  - Never changes anything.
author:
  - ephemeral.castle maintainers (@ephemeral-castle)
extends_documentation_fragment:
  - ephemeral.castle.fleet
  - ephemeral.castle.fleet.ACTION_GROUP
  - ephemeral.castle.attributes.INFO_MODULE
options:
  machine:
    description: The machine (or cluster, or cluster node) being drained.
    type: str
    required: true
"""

EXAMPLES = r"""
- name: What leaves pve-old, wave by wave
  ephemeral.castle.fleet_drain_plan:
    fleet: "{{ fleet }}"
    machine: pve-old
  register: drain
"""

RETURN = r"""
machine:
  description: The machine the plan is for.
  returned: always
  type: str
  sample: pve-old
waves:
  description: The waves in the order they move, each with its workloads, their targets and what blocks it.
  returned: always
  type: list
  elements: dict
  sample:
    - wave: 2
      workloads: [mcp]
      targets: {"mcp": "castle"}
      blocked_by: [{"workload": "mcp", "reason": "blog (wave 1) depends on it and has not moved yet",
                    "waits_for": "blog"}]
staying:
  description: Workloads on the machine that also target it.
  returned: always
  type: list
  elements: str
  sample: []
workloads:
  description: The number of workloads that must leave the machine.
  returned: always
  type: int
  sample: 5
ready:
  description: The number of the first wave, when nothing blocks it; null when there is nothing to move or it is blocked.
  returned: always
  type: int
  sample: 1
"""

from ansible_collections.ephemeral.castle.plugins.module_utils.base import CastleError, run_module
from ansible_collections.ephemeral.castle.plugins.module_utils.fleet import LAYER, FleetError, fleet_of
from ansible_collections.ephemeral.castle.plugins.module_utils.fleet_rules import drain_plan


def run(params):
    fleet = fleet_of(params)
    try:
        plan = drain_plan(fleet, params['machine'])
    except FleetError as exc:
        raise CastleError('machine: {0}'.format('; '.join(exc.errors)))
    first = plan['waves'][0] if plan['waves'] else None
    return dict(plan, changed=False, ready=first['wave'] if first and not first['blocked_by'] else None)


def main():
    module = LAYER.module({'machine': {'type': 'str', 'required': True}})
    run_module(module, lambda: run(module.params))


if __name__ == '__main__':
    main()
