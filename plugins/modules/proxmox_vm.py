#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: ephemeral.castle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

DOCUMENTATION = r"""
module: proxmox_vm
short_description: Reconcile a Proxmox VE virtual machine with its description
version_added: 0.1.0
description:
  - Finds a VM by O(name) (unique in the cluster) or O(vmid), creates it from scratch or as a
    clone of a template when it is missing, and brings its configuration to what the options
    ask for with the smallest change in one config write. Disks only grow.
  - Only the options you set are managed; everything else in the VM's config is left alone.
  - Changes that a running VM cannot take at once stay pending; they are reported in RV(pending) and
    applied with a restart only when O(restart_if_needed=true).
  - Requests that fail on connection errors, 5xx answers or lock timeouts are retried with
    jittered backoff; a VMID taken by a parallel caller is allocated again.
author:
  - ephemeral.castle maintainers (@ephemeral-castle)
extends_documentation_fragment:
  - ephemeral.castle.proxmox
  - ephemeral.castle.proxmox.ACTION_GROUP
  - ephemeral.castle.attributes
  - ephemeral.castle.gate
options:
  name:
    description:
      - Name of the VM; must be unique in the cluster. Required to create a VM.
    type: str
  vmid:
    description:
      - ID of the VM. When it is missing for a new VM, the next free one is allocated.
    type: int
  node:
    description:
      - Proxmox VE node the VM lives on. Required to create a VM.
      - A clone whose template is on another node goes straight there when the template's disks (and
        O(target_storage)) are on shared storage; otherwise, as Proxmox VE refuses to clone a VM on local
        storage to another node, it is cloned on the template's node and migrated offline to this one
        before its config is written (a linked clone cannot take that path and is refused).
      - An existing VM found stopped on another node is migrated offline to this one; a running one
        is refused rather than stopped.
    type: str
  state:
    description:
      - V(present) creates or reconciles the VM without touching its power state; V(started) and
        V(stopped) also set that; V(restarted) restarts it (starting it if it is stopped);
        V(absent) stops and destroys it with its disks, only with the phoenix gate's consent for its name
        (O(gate_token)).
    type: str
    choices: [present, started, stopped, restarted, absent]
    default: present
  clone:
    description:
      - Name or VMID of the template (or VM) to clone when the VM does not exist.
      - Without it a missing VM is created from scratch.
    type: str
  full:
    description:
      - Make a full clone (independent disks) rather than a linked one.
    type: bool
    default: true
  target_storage:
    description:
      - Storage for a full clone's disks; the template's own storage when unset.
    type: str
  iso:
    description:
      - ISO volume to put in a cdrom drive (C(ide2)), for example C(local:iso/talos-v1.11.6-metal-amd64.iso).
    type: str
  boot:
    description:
      - Boot order as a list of devices, for example C([scsi0, ide2]).
    type: list
    elements: str
  cores:
    description: CPU cores per socket.
    type: int
  sockets:
    description: CPU sockets.
    type: int
  cpu:
    description: CPU type, for example C(host) or C(x86-64-v2-AES).
    type: str
  memory:
    description: Memory in MiB.
    type: int
  balloon:
    description: Minimum memory in MiB for the balloon device; C(0) turns ballooning off.
    type: int
  scsihw:
    description: SCSI controller model, for example C(virtio-scsi-single).
    type: str
  disks:
    description:
      - Disks by slot. A missing disk is created on its O(disks[].storage); an existing one grows
        to O(disks[].size) and never shrinks.
    type: list
    elements: dict
    suboptions:
      slot:
        description: Disk slot, such as C(scsi0) or C(virtio1).
        type: str
        required: true
      size:
        description: Size, such as C(32G) (a bare number is GiB).
        type: str
        required: true
      storage:
        description: Storage for a new disk; for an existing disk, where it must already be.
        type: str
      discard:
        description: Pass discard (TRIM) to the storage.
        type: bool
      iothread:
        description: Give the disk its own I/O thread.
        type: bool
      ssd:
        description: Show the disk to the guest as an SSD.
        type: bool
  networks:
    description:
      - Network devices by slot. An unset MAC keeps the one the device has (or lets PVE pick one).
    type: list
    elements: dict
    suboptions:
      slot:
        description: Device slot, such as C(net0).
        type: str
        required: true
      bridge:
        description: Bridge to attach to, such as C(vmbr0).
        type: str
      vlan:
        description: VLAN tag.
        type: int
      model:
        description: Device model.
        type: str
        choices: [virtio, e1000, e1000e, rtl8139, vmxnet3]
      mac:
        description: Fixed MAC address, for address reservations.
        type: str
      firewall:
        description: Put the device behind the PVE firewall.
        type: bool
  agent:
    description: Enable the QEMU guest agent device.
    type: bool
  serial:
    description: Give the VM a serial console (C(serial0) on a socket), as Talos uses.
    type: bool
  tags:
    description: Tags; compared as a set.
    type: list
    elements: str
  description:
    description: Notes shown in the PVE interface.
    type: str
  onboot:
    description: Start the VM when its node boots.
    type: bool
  startup:
    description: Start and shutdown order.
    type: dict
    suboptions:
      order:
        description: Position in the start order.
        type: int
      up:
        description: Seconds to wait after starting it before the next VM.
        type: int
      down:
        description: Seconds to wait for it to shut down.
        type: int
  protection:
    description:
      - Protect the VM and its disks from removal. A protected VM is never destroyed by O(state=absent).
    type: bool
  restart_if_needed:
    description:
      - Restart a running VM when a change is left pending, so it takes effect.
    type: bool
    default: false
  wait_for_ip:
    description:
      - Wait until the guest agent reports an IPv4 address (needs O(state=started) and the agent).
    type: bool
    default: false
  wait_timeout:
    description:
      - Seconds to wait for each task (create, clone, start, stop, destroy), for a locked VM to be
        free, and for an address with O(wait_for_ip).
      - The older name O(timeout) is an alias.
    type: int
    default: 600
    aliases: [timeout]
  shutdown_timeout:
    description:
      - Seconds a guest gets to shut down cleanly before it is stopped hard.
    type: int
    default: 120
seealso:
  - module: ephemeral.castle.proxmox_vm_info
"""

EXAMPLES = r"""
- name: A Talos control-plane VM cloned from the template, started, with a fixed MAC
  ephemeral.castle.proxmox_vm:
    api_host: pve1.example.internal
    api_token_id: automation@pve!castle
    api_token_secret: "{{ vault_proxmox_token }}"
    ca_path: /etc/ssl/pve-ca.pem
    name: talos-cp-1
    node: pve1
    clone: talos-template
    target_storage: local-lvm
    cores: 4
    memory: 8192
    disks:
      - slot: scsi0
        size: 40G
        discard: true
        iothread: true
    networks:
      - slot: net0
        bridge: vmbr0
        vlan: 40
        mac: "BC:24:11:40:00:01"
    agent: true
    serial: true
    tags: [talos, controlplane]
    state: started
    wait_for_ip: true

- name: A VM from scratch that boots the Talos ISO
  ephemeral.castle.proxmox_vm:
    name: talos-worker-1
    node: pve2
    iso: local:iso/talos-v1.11.6-metal-amd64.iso
    boot: [scsi0, ide2]
    scsihw: virtio-scsi-single
    disks:
      - slot: scsi0
        storage: local-lvm
        size: 64G
    networks:
      - slot: net0
        bridge: vmbr0

- name: Remove it, disks and all
  ephemeral.castle.proxmox_vm:
    name: talos-worker-1
    state: absent
"""

RETURN = r"""
vmid:
  description: ID of the VM (null for a VM check mode would create without a fixed O(vmid)).
  returned: always
  type: int
  sample: 101
node:
  description: Node the VM is on.
  returned: always
  type: str
  sample: pve1
status:
  description: Power state after the module ran (C(absent) when there is no VM).
  returned: always
  type: str
  sample: running
config:
  description: The VM's configuration, pending values included, after the module ran.
  returned: when the VM exists
  type: dict
  sample: {"name": "talos-cp-1", "cores": "4", "memory": "8192", "net0": "virtio=BC:24:11:40:00:01,bridge=vmbr0,tag=40"}
pending:
  description: Config keys whose new value waits for a restart of the VM.
  returned: always
  type: list
  elements: str
  sample: [memory]
macs:
  description: MAC address of each network device.
  returned: always
  type: dict
  sample: {"net0": "BC:24:11:40:00:01"}
ips:
  description:
    - IPv4 addresses the guest agent reports (only with O(wait_for_ip=true)).
    - In check mode, what the agent of a VM that already runs reports, without waiting; empty for a VM
      that would be created or started.
  returned: always
  type: list
  elements: str
  sample: ["10.0.40.11"]
requests:
  description: API requests the module made, retries and task polls included.
  returned: always
  type: int
  sample: 2
"""

from ansible_collections.ephemeral.castle.plugins.module_utils.base import run_module
from ansible_collections.ephemeral.castle.plugins.module_utils.gate import check_given
from ansible_collections.ephemeral.castle.plugins.module_utils.proxmox import LAYER, ProxmoxClient
from ansible_collections.ephemeral.castle.plugins.module_utils.proxmox_vm_reconcile import (
    VmReconciler, argument_spec)
from ansible_collections.ephemeral.castle.plugins.module_utils.proxmox_vm_spec import SpecError, check_spec


def reconciled(module, counted):
    """The VM brought to the options; `counted` holds the API requests made, also when it fails."""
    params = module.params
    check_spec(params)
    if params['state'] == 'absent' and not module.check_mode:
        check_given(params['gate_token'], params['gate_journal'], [params['name'] or str(params['vmid'])], 'destroy')
    client = ProxmoxClient(params)
    reconciler = VmReconciler(client, params, module.check_mode)
    try:
        result = dict(dict(pending=[], macs={}, ips=[]), **reconciler.run())
    finally:
        counted['requests'] = client.requests
    result.update(changed=reconciler.changed, requests=client.requests)
    if module._diff:
        result['diff'] = reconciler.diff
    return result


def main():
    module = LAYER.module(argument_spec(), required_one_of=[('name', 'vmid')])
    counted = dict(requests=0)
    run_module(module, lambda: reconciled(module, counted), errors=(SpecError,), partial=counted)


if __name__ == '__main__':
    main()
