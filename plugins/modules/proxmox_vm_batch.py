#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: ephemeral.castle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

DOCUMENTATION = r"""
module: proxmox_vm_batch
short_description: Reconcile many Proxmox VE virtual machines at once, with a cap per node
version_added: 0.1.0
description:
  - Does for every VM of O(vms) what M(ephemeral.castle.proxmox_vm) does for one, concurrently,
    with at most O(per_node_limit) VMs of any one Proxmox node in flight.
  - VMs with C(state=absent) are destroyed only with the phoenix gate's consent for their names (O(gate_token)).
  - Every VM description is checked before any request; one bad description changes nothing.
  - A VM that fails does not stop the others. The module then fails naming each failed VM and
    still returns what the others became; a re-run completes the rest.
  - VMIDs are claimed per process, so concurrent creates do not collide on C(/cluster/nextid);
    a VMID taken by another caller meanwhile is allocated again.
author:
  - ephemeral.castle maintainers (@ephemeral-castle)
extends_documentation_fragment:
  - ephemeral.castle.proxmox
  - ephemeral.castle.proxmox.ACTION_GROUP
  - ephemeral.castle.attributes
  - ephemeral.castle.gate
options:
  vms:
    description:
      - VM descriptions, each a dict of M(ephemeral.castle.proxmox_vm) options (without the
        connection options) with at least C(name). Names must be unique in the list.
    type: list
    elements: dict
    required: true
  per_node_limit:
    description:
      - Most VMs of one Proxmox node worked on at the same time.
    type: int
    default: 4
seealso:
  - module: ephemeral.castle.proxmox_vm
"""

EXAMPLES = r"""
- name: The VMs of a Talos cluster, at most four per Proxmox node at a time
  ephemeral.castle.proxmox_vm_batch:
    api_host: pve1.example.internal
    api_token_id: automation@pve!castle
    api_token_secret: "{{ vault_proxmox_token }}"
    per_node_limit: 4
    vms:
      - {name: talos-cp-1, node: pve1, clone: talos-template, cores: 4, memory: 8192, state: started}
      - {name: talos-cp-2, node: pve2, clone: talos-template, cores: 4, memory: 8192, state: started}
      - {name: talos-w-1, node: pve1, clone: talos-template, cores: 8, memory: 16384, state: started}
  register: cluster_vms
"""

RETURN = r"""
vms:
  description: What each VM that came out right became, by name (see M(ephemeral.castle.proxmox_vm)).
  returned: always
  type: dict
  sample: {"talos-cp-1": {"vmid": 101, "node": "pve1", "status": "running", "changed": true, "pending": [],
           "macs": {"net0": "BC:24:11:40:00:01"}, "ips": [], "requests": 9}}
failed_vms:
  description: The message of each VM that failed, by name.
  returned: always
  type: dict
  sample: {"talos-w-1": "storage 'ceph' does not exist on node pve1 (it has: local, local-lvm)"}
requests:
  description: API requests made for all VMs together.
  returned: always
  type: int
  sample: 27
"""

import threading
from concurrent.futures import ThreadPoolExecutor

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.ephemeral.castle.plugins.module_utils.base import option, run_module
from ansible_collections.ephemeral.castle.plugins.module_utils.gate import GateError, covers
from ansible_collections.ephemeral.castle.plugins.module_utils.proxmox import (
    LAYER, ProxmoxClient, ProxmoxError, VmidClaims, connection_argument_spec)
from ansible_collections.ephemeral.castle.plugins.module_utils.proxmox_vm_reconcile import (
    GATE_ARGUMENT_SPEC, VmReconciler, vm_argument_spec)
from ansible_collections.ephemeral.castle.plugins.module_utils.proxmox_vm_spec import SpecError, check_spec


def validated(vms):
    """Each description checked against proxmox_vm's options; all problems at once, by VM."""
    validator = ArgumentSpecValidator(vm_argument_spec())
    problems, described = [], []
    for index, vm in enumerate(vms):
        label = vm.get('name') or 'vms[{0}]'.format(index)
        if not vm.get('name'):
            problems.append('{0}: name is required'.format(label))
            continue
        outcome = validator.validate(vm)
        problems.extend('{0}: {1}'.format(label, msg) for msg in outcome.error_messages)
        if not outcome.error_messages:
            try:
                check_spec(outcome.validated_parameters)
            except SpecError as exc:
                problems.append('{0}: {1}'.format(label, exc))
            described.append(outcome.validated_parameters)
    names = [vm.get('name') for vm in vms]
    problems.extend('{0}: listed more than once'.format(n) for n in sorted(set(n for n in names if names.count(n) > 1)))
    return described, problems


def reconcile_all(module, answer):
    """Every VM reconciled; `answer` holds what each became, also when some failed."""
    if module.params['per_node_limit'] < 1:
        raise ProxmoxError('per_node_limit must be 1 or more, not {0}'.format(module.params['per_node_limit']))
    described, problems = validated(module.params['vms'])
    if problems:
        raise ProxmoxError('bad VM descriptions, nothing was changed: ' + '; '.join(problems))
    # The token must clear every VM to remove before any is touched; each is then used as its VM goes.
    removing = [vm['name'] for vm in described if vm['state'] == 'absent']
    if removing and (module.params['gate_token'] or not module.check_mode):
        covers(module.params['gate_journal'], module.params['gate_token'], removing)
    connection = dict((k, module.params[k]) for k in connection_argument_spec())
    consent = dict((k, module.params[k]) for k in GATE_ARGUMENT_SPEC)
    # One login up front: bad credentials fail once, clearly, before any thread starts.
    first = ProxmoxClient(connection)
    first.vms()

    limits = {}
    limits_lock = threading.Lock()
    claims = VmidClaims()

    def node_slot(node):
        with limits_lock:
            return limits.setdefault(node or '?', threading.Semaphore(module.params['per_node_limit']))

    def reconcile(params):
        with node_slot(params.get('node')):
            client = ProxmoxClient(connection)
            reconciler = VmReconciler(client, dict(connection, **dict(params, **consent)), module.check_mode, claims)
            try:
                result = reconciler.run()
            except (ProxmoxError, SpecError, GateError) as exc:
                return params['name'], None, str(exc), client.requests, None
            result.update(changed=reconciler.changed, requests=client.requests)
            return params['name'], result, None, client.requests, reconciler.diff

    workers = max(1, min(len(described), 32))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        outcomes = list(pool.map(reconcile, described))

    done, failed, diffs = {}, {}, {'before': {}, 'after': {}}
    total = first.requests
    for name, result, error, requests, diff in outcomes:
        total += requests
        if error:
            failed[name] = error
            continue
        result.pop('config', None)
        done[name] = result
        if result['changed'] and diff:
            diffs['before'][name] = diff['before']
            diffs['after'][name] = diff['after']
    answer.update(changed=any(r['changed'] for r in done.values()), vms=done, failed_vms=failed, requests=total)
    if module._diff:
        answer['diff'] = diffs
    if failed:
        raise ProxmoxError('{0} of {1} VMs failed (a re-run completes them): {2}'.format(
            len(failed), len(described), '; '.join('{0}: {1}'.format(k, v) for k, v in sorted(failed.items()))))
    return answer


def main():
    module = LAYER.module(dict(GATE_ARGUMENT_SPEC, vms=option('list', elements='dict', required=True),
                               per_node_limit=option('int', 4)))
    answer = {}
    run_module(module, lambda: reconcile_all(module, answer), partial=answer)


if __name__ == '__main__':
    main()
