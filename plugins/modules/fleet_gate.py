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
  - With O(machine) and O(backups) (the backups just taken of the target, as the C(phoenix_backup) role gathers
    them from M(ephemeral.castle.longhorn_backup), M(ephemeral.castle.talos_etcd_snapshot) and
    M(ephemeral.castle.vault_raft_snapshot)), the reasons also hold C(backup-failed) (one per backup that did
    not complete, with its error), C(backup-stale) (completed more than O(backup_max_age_hours) ago) and
    C(backup-missing) (a claim a stateful workload on or bound for the target lists in C(volumes) that no
    backup covers). A stateful workload whose claims are all backed up needs no recorded evidence; its
    C(promotion.backup_restore) stays the operator's record.
  - Returns every reason, not only the first.
  - With O(machine) and O(journal), a machine, cluster or cluster node that passes the gate (or that the operator
    lets go with O(override_reason)) gets a token, the gate's consent for its wipe. The token is good only for the
    fleet names the target covers (RV(cleared)), only while the fleet file O(src) is unchanged, only for
    O(token_ttl) seconds, and once per name and action. The destructive modules (M(ephemeral.castle.talos_reset),
    and M(ephemeral.castle.proxmox_vm) and M(ephemeral.castle.proxmox_vm_batch) removing VMs) refuse to act
    without it.
  - The decision and the token are recorded in O(journal), a markdown list beside the fleet file; the journal
    keeps the token's SHA-256, not the token. Each use of the token is recorded there too.
  - Otherwise never changes anything. In check mode no token is issued and nothing is written.
author:
  - ephemeral.castle maintainers (@ephemeral-castle)
extends_documentation_fragment:
  - ephemeral.castle.fleet
  - ephemeral.castle.fleet.ACTION_GROUP
  - ephemeral.castle.attributes
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
  journal:
    description:
      - The phoenix journal (markdown) to record a cleared or overridden O(machine) in, with the token issued.
      - Without it no token is issued.
    type: path
  override_reason:
    description:
      - Why O(machine) may be wiped although the gate refuses; recorded in O(journal) with every refusal.
      - A token is issued as for a target that passed.
    type: str
  backups:
    description:
      - The backups just taken of O(machine), each with C(name), C(kind) (C(volume), C(etcd) or C(vault)),
        C(state) (C(Completed) when it is done), C(created) (ISO 8601), C(error) and, for a volume, C(claim)
        (C(<namespace>/<name>)).
      - Without it, only the evidence recorded in the fleet file is read.
    type: list
    elements: dict
  backup_max_age_hours:
    description: How old, in hours, a backup in O(backups) may be.
    type: int
    default: 24
  token_ttl:
    description: Seconds the token is good for.
    type: int
    default: 1800
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

- name: Clear the castle cluster for a rebuild, recording the token its wipe needs in the journal
  ephemeral.castle.fleet_gate:
    src: "{{ fleet_file }}"
    machine: castle
    journal: "{{ fleet_file | dirname }}/phoenix-journal.md"
    fail_on_refusal: true
  register: castle_gate
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
  sample: [{"code": "not-drained", "message": "workload openbao still runs on pve-old"},
           {"code": "backup-failed", "message": "volume backup pvc-2f0c of claim blog/blog-content did not complete (Error)"}]
kind:
  description: What O(machine) is in the fleet - C(cluster), C(node) (of a cluster) or C(machine).
  returned: with O(machine)
  type: str
  sample: cluster
cleared:
  description: The fleet names a wipe of O(machine) destroys, which a token issued now is good for.
  returned: with O(machine)
  type: list
  elements: str
  sample: [talos-cp-1, talos-w-1]
overridden:
  description: Whether O(override_reason) let a target go that the gate refuses.
  returned: with O(machine)
  type: bool
  sample: false
token:
  description: The gate's consent for the wipe, for the destructive modules' O(ephemeral.castle.talos_reset#module:gate_token).
  returned: when a token was issued
  type: str
  sample: 3bV0dK9...
token_id:
  description: The token's name in the journal (the start of its SHA-256).
  returned: when a token was issued
  type: str
  sample: 1f0c9a2e77b4
expires:
  description: When the token stops being good, in UTC.
  returned: when a token was issued
  type: str
  sample: "2026-12-04T14:30:00Z"
"""

import json

from ansible_collections.ephemeral.castle.plugins.module_utils.base import CastleError, run_module
from ansible_collections.ephemeral.castle.plugins.module_utils.fleet import (
    LAYER, FleetError, FleetRefusal, fleet_of, place_kind, wiped_with)
from ansible_collections.ephemeral.castle.plugins.module_utils.fleet_rules import gate_machine, gate_workload, utcnow
from ansible_collections.ephemeral.castle.plugins.module_utils.gate import GateError, issue


def refusals(reasons):
    return '; '.join('[{0}] {1}'.format(r['code'], r['message']) for r in reasons)


def consent(module, fleet, result):
    """Issue and record the token for a machine that passed or was let go; result gains what was issued."""
    params = module.params
    machine = params['machine']
    result.update(kind=place_kind(fleet, machine), cleared=wiped_with(fleet, machine),
                  overridden=not result['passed'] and bool(params['override_reason']))
    if not params['journal'] or not (result['passed'] or result['overridden']) or module.check_mode:
        return
    if not params['src']:
        raise FleetRefusal('a gate token is bound to the fleet file: give src (not fleet) with journal', result)
    decision = 'gate passed' if result['passed'] else 'overridden, reason: {0}; refusals: {1}'.format(
        json.dumps(params['override_reason']), refusals(result['reasons']))
    try:
        token, record, line = issue(params['journal'], params['src'], machine, result['kind'], result['cleared'],
                                    params['token_ttl'], decision)
    except GateError as exc:
        raise FleetRefusal(str(exc), result)
    result.update(changed=True, token=token, token_id=record['id'], expires=record['expires'])
    if module._diff:
        result['diff'] = dict(before='', after=line + '\n', after_header=params['journal'])


def run(module):
    params = module.params
    if bool(params['workload']) == bool(params['machine']):
        raise CastleError('give exactly one of workload and machine')
    if params['max_evidence_age_days'] < 0:
        raise CastleError('max_evidence_age_days must be 0 or more, not {0}'.format(params['max_evidence_age_days']))
    if params['backup_max_age_hours'] <= 0:
        raise CastleError('backup_max_age_hours must be more than 0, not {0}'.format(params['backup_max_age_hours']))
    if params['token_ttl'] <= 0:
        raise CastleError('token_ttl must be more than 0 seconds, not {0}'.format(params['token_ttl']))
    if params['override_reason'] is not None and not params['override_reason'].strip():
        raise CastleError('override_reason must say why the gate may be overridden, not be empty')
    fleet = fleet_of(params)
    try:
        if params['workload']:
            target = 'workload/' + params['workload']
            passed, reasons = gate_workload(fleet, params['workload'], params['base_dir'])
        else:
            target = 'machine/' + params['machine']
            passed, reasons = gate_machine(fleet, params['machine'], utcnow(), params['max_evidence_age_days'],
                                           params['backups'], params['backup_max_age_hours'])
    except FleetError as exc:
        raise CastleError('; '.join(exc.errors))
    result = {'changed': False, 'passed': passed, 'target': target, 'reasons': reasons}
    if params['machine']:
        consent(module, fleet, result)
    if not passed and params['fail_on_refusal'] and not result.get('overridden'):
        raise FleetRefusal('{0} does not pass the gate: {1}'.format(target, refusals(reasons)), result)
    return result


def main():
    module = LAYER.module({'workload': {'type': 'str'}, 'machine': {'type': 'str'},
                           'base_dir': {'type': 'path', 'default': '.'},
                           'max_evidence_age_days': {'type': 'int', 'default': 7},
                           'journal': {'type': 'path'}, 'override_reason': {'type': 'str'},
                           'backups': {'type': 'list', 'elements': 'dict'},
                           'backup_max_age_hours': {'type': 'int', 'default': 24},
                           'token_ttl': {'type': 'int', 'default': 1800, 'no_log': False},
                           'fail_on_refusal': {'type': 'bool', 'default': False}})
    run_module(module, lambda: run(module))


if __name__ == '__main__':
    main()
