#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: ephemeral.castle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

DOCUMENTATION = r"""
module: longhorn_volume_info
short_description: Report Longhorn volumes, their replicas and the nodes that hold them
version_added: 0.1.0
description:
  - Reads every Longhorn volume with its state, robustness, claim and replicas (node, state, healthy).
  - A replica is healthy when Longhorn has not marked it failed (C(spec.failedAt)) and its instance is not in
    C(error).
  - Says per node which volumes have healthy replicas on that node only (RV(volumes_only_on)), so whether a node
    can be taken out without losing the last copy of a volume is one condition.
author:
  - ephemeral.castle maintainers (@ephemeral-castle)
extends_documentation_fragment:
  - ephemeral.castle.kube
  - ephemeral.castle.kube.LONGHORN_ACTION_GROUP
  - ephemeral.castle.attributes.INFO_MODULE
options:
  volumes:
    description: Only these volumes, each a Longhorn volume name or a claim as C(namespace/name). All when left out.
    type: list
    elements: str
  longhorn_namespace:
    description: Namespace Longhorn runs in.
    type: str
    default: longhorn-system
"""

EXAMPLES = r"""
- name: Read the volumes before taking node-2 out
  ephemeral.castle.longhorn_volume_info:
  register: storage

- name: Every volume keeps a healthy copy on another node
  ansible.builtin.assert:
    that:
      - storage.degraded == []
      - storage.volumes_only_on['node-2'] is not defined
"""

RETURN = r"""
volumes:
  description: The volumes in name order.
  returned: always
  type: list
  elements: dict
  sample:
    - {"name": "pvc-6f0e2a1c", "state": "attached", "robustness": "healthy", "size": 1073741824,
       "number_of_replicas": 2, "claim": "apps/data-postgres-0", "pv": "pvc-6f0e2a1c",
       "nodes": ["node-1", "node-2"], "degraded": false, "last_backup": "pvc-6f0e2a1c-20261204-200000",
       "last_backup_at": "2026-12-04T20:00:04Z",
       "replicas": [{"name": "pvc-6f0e2a1c-r-1a2b", "node": "node-1", "state": "running", "healthy": true},
                    {"name": "pvc-6f0e2a1c-r-3c4d", "node": "node-2", "state": "running", "healthy": true}]}
volumes_only_on:
  description: For each node, the volumes whose every healthy replica is on that node; a node not listed holds no
    volume's last healthy copy.
  returned: always
  type: dict
  sample: {"node-3": ["pvc-9a8b7c6d"]}
without_healthy_replica:
  description: Volumes that have no healthy replica on any node.
  returned: always
  type: list
  elements: str
  sample: []
degraded:
  description: Volumes Longhorn reports degraded or faulted, or with fewer healthy replicas than they should have.
  returned: always
  type: list
  elements: str
  sample: ["pvc-9a8b7c6d"]
"""

from ansible_collections.ephemeral.castle.plugins.module_utils import longhorn
from ansible_collections.ephemeral.castle.plugins.module_utils.base import option, run_module
from ansible_collections.ephemeral.castle.plugins.module_utils.kube import LAYER, KubeClient


def volume_info(module):
    params = module.params
    store = longhorn.Longhorn(KubeClient(params), params['longhorn_namespace'])
    selected = set(v['metadata']['name'] for v in store.select(params['volumes']))
    volumes = [v for v in store.summaries() if v['name'] in selected]
    only_on = {}
    for volume in volumes:
        if len(volume['nodes']) == 1:
            only_on.setdefault(volume['nodes'][0], []).append(volume['name'])
    return dict(changed=False, volumes=volumes, volumes_only_on=only_on,
                without_healthy_replica=[v['name'] for v in volumes if not v['nodes']],
                degraded=[v['name'] for v in volumes if v['degraded']])


def main():
    module = LAYER.module(dict(volumes=option('list', elements='str'),
                               longhorn_namespace=option('str', longhorn.NAMESPACE)))
    run_module(module, lambda: volume_info(module))


if __name__ == '__main__':
    main()
