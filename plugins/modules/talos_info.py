#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: ephemeral.castle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

DOCUMENTATION = r"""
module: talos_info
short_description: Read Talos nodes' state, versions, cluster members and etcd members
version_added: 0.1.0
description:
  - For each of O(nodes), whether it is configured, in maintenance mode or unreachable, its machine
    stage and readiness (C(talosctl get machinestatus)) and its Talos version (C(talosctl version)).
  - From the first configured node, the cluster's members (C(talosctl get members)); from the first
    configured node that answers it (a control-plane node), the etcd members (C(talosctl etcd members)).
  - Never changes anything.
author:
  - ephemeral.castle maintainers (@ephemeral-castle)
extends_documentation_fragment:
  - ephemeral.castle.talos
  - ephemeral.castle.talos.ACTION_GROUP
  - ephemeral.castle.attributes.INFO_MODULE
options: {}
"""

EXAMPLES = r"""
- name: What the lab's nodes run
  ephemeral.castle.talos_info:
    talosconfig: ~/.talos/lab
    nodes: [10.0.40.11, 10.0.40.21]
  register: talos
"""

RETURN = r"""
nodes:
  description: Each node's state by address.
  returned: always
  type: dict
  sample:
    10.0.40.11: {"state": "configured", "stage": "running", "ready": true, "version": "v1.11.6"}
    10.0.40.22: {"state": "maintenance", "stage": "maintenance", "ready": false, "version": null}
members:
  description: Cluster members as the first configured node sees them (each one's C(spec)).
  returned: always
  type: list
  elements: dict
  sample: [{"hostname": "cp-1", "machineType": "controlplane", "addresses": ["10.0.40.11"]}]
etcd_members:
  description: etcd members, as listed by C(talosctl etcd members).
  returned: always
  type: list
  elements: dict
  sample: [{"NODE": "10.0.40.11", "ID": "3a2f7c9d1e0b4a56", "HOSTNAME": "cp-1"}]
"""

from ansible_collections.ephemeral.castle.plugins.module_utils.base import run_module
from ansible_collections.ephemeral.castle.plugins.module_utils.talos import TALOS, TalosError, Talosctl, target_node
from ansible_collections.ephemeral.castle.plugins.module_utils.talos_output import parse_version


def gather(talosctl):
    target_node(talosctl, 'read')
    nodes, configured = {}, []
    for node in talosctl.nodes:
        state, status, detail = talosctl.machine_status(node)
        status = status or {}
        found = dict(state=state, stage=status.get('stage'), ready=bool((status.get('status') or {}).get('ready')),
                     version=None)
        if state == 'unreachable':
            found['error'] = detail
        if state == 'configured':
            configured.append(node)
            servers = parse_version(talosctl.run(['version'], nodes=[node]))['servers']
            found['version'] = servers[0].get('tag') if servers else None
        nodes[node] = found
    members, etcd = [], []
    if configured:
        members = [m.get('spec') or {} for m in talosctl.run_json(['get', 'members'], nodes=configured[:1])]
        for node in configured:
            try:
                etcd = talosctl.etcd_members(node, retry=False)
                break
            except TalosError:
                continue  # a worker, or etcd not bootstrapped yet
    return dict(changed=False, nodes=nodes, members=members, etcd_members=etcd)


def main():
    module = TALOS.module({})
    with Talosctl(module) as talosctl:
        run_module(module, lambda: gather(talosctl))


if __name__ == '__main__':
    main()
