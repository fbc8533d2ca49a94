#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: ephemeral.castle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

DOCUMENTATION = r"""
module: proxmox_vm_info
short_description: List Proxmox VE virtual machines by name, VMID, tag or all
version_added: 0.1.0
description:
  - Reads the cluster's VMs (templates included) in one request, filters them, and optionally
    reads each one's configuration. Never changes anything.
author:
  - ephemeral.castle maintainers (@ephemeral-castle)
extends_documentation_fragment:
  - ephemeral.castle.proxmox
  - ephemeral.castle.proxmox.ACTION_GROUP
  - ephemeral.castle.attributes.INFO_MODULE
options:
  name:
    description: Only the VM with this name.
    type: str
  vmid:
    description: Only the VM with this ID.
    type: int
  tag:
    description: Only VMs carrying this tag.
    type: str
  node:
    description: Only VMs on this node.
    type: str
  include_config:
    description: Also read each VM's configuration (one request per VM).
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Every VM tagged talos, with its configuration
  ephemeral.castle.proxmox_vm_info:
    api_host: pve1.example.internal
    api_token_id: automation@pve!castle
    api_token_secret: "{{ vault_proxmox_token }}"
    tag: talos
    include_config: true
  register: talos_vms
"""

RETURN = r"""
vms:
  description: The VMs that match, sorted by VMID.
  returned: always
  type: list
  elements: dict
  sample:
    - {"vmid": 101, "name": "talos-cp-1", "node": "pve1", "status": "running", "template": false, "tags": ["talos"],
       "lock": null, "config": {"cores": "4"}}
"""

from ansible_collections.ephemeral.castle.plugins.module_utils.base import option, run_module
from ansible_collections.ephemeral.castle.plugins.module_utils.proxmox import LAYER, ProxmoxClient
from ansible_collections.ephemeral.castle.plugins.module_utils.proxmox_vm_spec import normalise_tags


def summary(vm):
    tags = normalise_tags(vm.get('tags', ''))
    return dict(vmid=int(vm['vmid']), name=vm.get('name'), node=vm.get('node'), status=vm.get('status'),
                template=bool(vm.get('template')), tags=tags.split(';') if tags else [], lock=vm.get('lock'))


def matches(vm, params):
    return ((params['name'] is None or vm['name'] == params['name'])
            and (params['vmid'] is None or vm['vmid'] == params['vmid'])
            and (params['node'] is None or vm['node'] == params['node'])
            and (params['tag'] is None or params['tag'].lower() in vm['tags']))


def listed(params):
    client = ProxmoxClient(params)
    vms = sorted((vm for vm in map(summary, client.vms()) if matches(vm, params)), key=lambda vm: vm['vmid'])
    if params['include_config']:
        for vm in vms:
            config = client.get('nodes/{node}/qemu/{vmid}/config'.format(**vm))
            config.pop('digest', None)
            vm['config'] = dict((k, str(v)) for k, v in config.items())
    return dict(changed=False, vms=vms)


def main():
    module = LAYER.module(dict(name=option('str'), vmid=option('int'), tag=option('str'), node=option('str'),
                               include_config=option('bool', False)))
    run_module(module, lambda: listed(module.params))


if __name__ == '__main__':
    main()
