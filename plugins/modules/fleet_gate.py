#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: ephemeral.castle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

DOCUMENTATION = r"""
module: fleet_gate
short_description: Whether a workload may count as production, or a machine may be wiped, with every reason
version_added: 0.1.0
description:
  - With O(workload), whether it may count as production on its target. Reasons, by code - C(no-target),
    C(target-not-production) (the target is not a C(production) machine or cluster), C(no-overlay),
    C(overlay-missing), C(app-toml-missing), C(stage-manifest-missing) (one per stage without C(<stage>.yaml),
    C(<stage>.yml) or C(<stage>/kustomization.yaml) in the overlay), C(stage-not-proven) (one per stage of
    C(deploy), C(observe), C(promote), C(rollback) not proven), C(no-backup-restore) (stateful workloads only),
    C(no-canary), C(no-approval), C(image-not-pinned) (no image, untagged, C(latest), a tag that is not a version
    such as C(1.4.2) or C(v2), or a malformed digest).
  - With O(machine), whether it may be wiped. Reasons - C(not-drained) (one per workload still on it),
    C(no-backup-restore), C(backup-restore-stale) (older than O(max_evidence_age_days)) and
    C(backup-restore-in-future), for each stateful workload on it now or that left it (C(previous_host)).
  - Returns every reason, not only the first. Never changes anything.
author:
  - ephemeral.castle maintainers (@ephemeral-castle)
extends_documentation_fragment:
  - ephemeral.castle.fleet
  - ephemeral.castle.fleet.ACTION_GROUP
  - ephemeral.castle.attributes.INFO_MODULE
options:
  workload:
    description: The workload to gate for production. Exactly one of O(workload) and O(machine) is required.
    type: str
  machine:
    description: The machine (or cluster) to gate for a wipe. Exactly one of O(workload) and O(machine) is required.
    type: str
  base_dir:
    description: Directory the workloads' C(promotion.overlay) paths are relative to (a GitOps checkout).
    type: path
    default: .
  max_evidence_age_days:
    description: How old, in days, backup/restore evidence may be for a machine to be wiped.
    type: int
    default: 7
  fail_on_refusal:
    description: Fail, listing every reason, when the gate does not pass. With V(false), return them and succeed.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: May blog count as production on its target?
  ephemeral.castle.fleet_gate:
    fleet: "{{ fleet }}"
    workload: blog
    base_dir: "{{ playbook_dir }}/../gitops"
  register: blog_gate

- name: Refuse to wipe pve-old unless it is drained and its data is backed up
  ephemeral.castle.fleet_gate:
    src: inventories/lab/lab.fleet.yml
    machine: pve-old
    max_evidence_age_days: 2
    fail_on_refusal: true
"""

RETURN = r"""
passed:
  description: Whether the gate passes.
  returned: always
  type: bool
  sample: false
target:
  description: What was gated, as C(workload/<name>) or C(machine/<name>).
  returned: always
  type: str
  sample: machine/pve-old
reasons:
  description: Every reason the gate refuses, each with a code and a message; empty when it passes.
  returned: always
  type: list
  elements: dict
  sample: [{"code": "not-drained", "message": "workload openbao still runs on pve-old"}]
"""

from ansible_collections.ephemeral.castle.plugins.module_utils.fleet import (
    FleetError, fleet_module, gate_machine, gate_workload, module_fleet, utcnow)


def main():
    module = fleet_module({'workload': {'type': 'str'}, 'machine': {'type': 'str'},
                           'base_dir': {'type': 'path', 'default': '.'},
                           'max_evidence_age_days': {'type': 'int', 'default': 7},
                           'fail_on_refusal': {'type': 'bool', 'default': False}})
    params = module.params
    if bool(params['workload']) == bool(params['machine']):
        module.fail_json(msg='give exactly one of workload and machine')
    if params['max_evidence_age_days'] < 0:
        module.fail_json(msg='max_evidence_age_days must be 0 or more, not {0}'.format(params['max_evidence_age_days']))
    fleet = module_fleet(module)
    try:
        if params['workload']:
            target = 'workload/' + params['workload']
            passed, reasons = gate_workload(fleet, params['workload'], params['base_dir'])
        else:
            target = 'machine/' + params['machine']
            passed, reasons = gate_machine(fleet, params['machine'], utcnow(), params['max_evidence_age_days'])
    except FleetError as exc:
        module.fail_json(msg='; '.join(exc.errors))
    result = {'changed': False, 'passed': passed, 'target': target, 'reasons': reasons}
    if not passed and params['fail_on_refusal']:
        module.fail_json(msg='{0} does not pass the gate: {1}'.format(
            target, '; '.join('[{0}] {1}'.format(r['code'], r['message']) for r in reasons)), **result)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
