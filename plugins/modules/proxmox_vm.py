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
      - Proxmox VE node the VM lives on. Required to create a VM; ignored for one that exists.
    type: str
  state:
    description:
      - V(present) creates or reconciles the VM without touching its power state; V(started) and
        V(stopped) also set that; V(restarted) restarts it (starting it if it is stopped);
        V(absent) stops and destroys it with its disks.
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
  timeout:
    description:
      - Seconds to wait for each task (create, clone, start, stop, destroy), for a locked VM to be
        free, and for an address with O(wait_for_ip).
    type: int
    default: 600
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
  description: IPv4 addresses the guest agent reports (only with O(wait_for_ip=true)).
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

import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.ephemeral.castle.plugins.module_utils.proxmox import (
    CONNECTION_OPTIONS, DOES_NOT_EXIST, ProxmoxClient, ProxmoxError, allocate_vmid, connection_argument_spec)
from ansible_collections.ephemeral.castle.plugins.module_utils.proxmox_vm_spec import (
    NET_MODELS, SpecError, apply_plan, check_spec, create_config, macs, plan_changes, storages_needed)

HIDDEN_KEYS = ('digest',)


def argument_spec():
    spec = connection_argument_spec()
    spec.update(
        name=dict(type='str'),
        vmid=dict(type='int'),
        node=dict(type='str'),
        state=dict(type='str', default='present', choices=['present', 'started', 'stopped', 'restarted', 'absent']),
        clone=dict(type='str'),
        full=dict(type='bool', default=True),
        target_storage=dict(type='str'),
        iso=dict(type='str'),
        boot=dict(type='list', elements='str'),
        cores=dict(type='int'),
        sockets=dict(type='int'),
        cpu=dict(type='str'),
        memory=dict(type='int'),
        balloon=dict(type='int'),
        scsihw=dict(type='str'),
        disks=dict(type='list', elements='dict', options=dict(
            slot=dict(type='str', required=True),
            size=dict(type='str', required=True),
            storage=dict(type='str'),
            discard=dict(type='bool'),
            iothread=dict(type='bool'),
            ssd=dict(type='bool'),
        )),
        networks=dict(type='list', elements='dict', options=dict(
            slot=dict(type='str', required=True),
            bridge=dict(type='str'),
            vlan=dict(type='int'),
            model=dict(type='str', choices=list(NET_MODELS)),
            mac=dict(type='str'),
            firewall=dict(type='bool'),
        )),
        agent=dict(type='bool'),
        serial=dict(type='bool'),
        tags=dict(type='list', elements='str'),
        description=dict(type='str'),
        onboot=dict(type='bool'),
        startup=dict(type='dict', options=dict(order=dict(type='int'), up=dict(type='int'), down=dict(type='int'))),
        protection=dict(type='bool'),
        restart_if_needed=dict(type='bool', default=False),
        wait_for_ip=dict(type='bool', default=False),
        timeout=dict(type='int', default=600),
        shutdown_timeout=dict(type='int', default=120),
    )
    return spec


class VmReconciler(object):
    """Reads the VM once, works out the change, writes once; every request goes through the client."""

    def __init__(self, module, client):
        self.module = module
        self.params = module.params
        self.client = client
        self.changed = False
        self.diff = {'before': {}, 'after': {}}

    # ----------------------------------------------------------------- find

    def find(self):
        """The VM's cluster resource entry, or None; enforces that its name is unique."""
        name, vmid = self.params['name'], self.params['vmid']
        vms = self.client.vms()
        named = [vm for vm in vms if name and vm.get('name') == name]
        if vmid is not None:
            found = next((vm for vm in vms if int(vm['vmid']) == vmid), None)
            others = [vm for vm in named if int(vm['vmid']) != vmid]
            if others:
                raise ProxmoxError('name {0!r} is already used by VM {1}; names must be unique'.format(
                    name, ', '.join(str(vm['vmid']) for vm in others)))
            return found, vms
        if len(named) > 1:
            raise ProxmoxError('name {0!r} is used by VMs {1}; names must be unique, so give vmid'.format(
                name, ', '.join(sorted(str(vm['vmid']) for vm in named))))
        return (named[0] if named else None), vms

    def source_of_clone(self, vms):
        wanted = self.params['clone']
        matches = [vm for vm in vms if vm.get('name') == wanted or str(vm['vmid']) == wanted]
        if len(matches) != 1:
            raise ProxmoxError('clone: {0} {1!r}'.format(
                'no template or VM named' if not matches else 'more than one VM is named', wanted))
        return matches[0]

    def wait_unlocked(self, vm):
        """A VM locked by a running task (clone, create, backup...) is waited for, not written to."""
        deadline = time.monotonic() + self.params['timeout']
        delay = 0.2
        while vm.get('lock'):
            if time.monotonic() >= deadline:
                raise ProxmoxError('VM {0} is still locked ({1}) after {2}s'.format(
                    vm['vmid'], vm['lock'], self.params['timeout']))
            time.sleep(delay)
            delay = min(delay * 1.5, 2.0)
            vm = dict(vm, **self.client.get('nodes/{node}/qemu/{vmid}/status/current'.format(**vm)))
            vm['lock'] = vm.get('lock')
        return vm

    def read_config(self, vm):
        """The VM's config with pending values applied, and the keys that are pending."""
        entries = self.client.get('nodes/{node}/qemu/{vmid}/pending'.format(**vm))
        effective, pending = {}, []
        for entry in entries:
            key = entry['key']
            if key in HIDDEN_KEYS:
                continue
            if entry.get('delete'):
                pending.append(key)
                continue
            if 'pending' in entry:
                pending.append(key)
                effective[key] = str(entry['pending'])
            elif 'value' in entry:
                effective[key] = str(entry['value'])
        return effective, sorted(pending)

    # --------------------------------------------------------------- create

    def check_storages(self, node):
        """Refuse unknown storages before anything is created, naming what the node has."""
        needed = storages_needed(self.params)
        if not needed:
            return
        available = set(s['storage'] for s in self.client.get('nodes/{0}/storage'.format(node)))
        missing = sorted(needed - available)
        if missing:
            raise ProxmoxError('storage {0} does not exist on node {1} (it has: {2})'.format(
                ', '.join(repr(m) for m in missing), node, ', '.join(sorted(available))))

    def create(self, vms):
        params = self.params
        if not params['name']:
            raise ProxmoxError('name is required to create a VM')
        if not params['node']:
            raise ProxmoxError('node is required to create VM {0!r}'.format(params['name']))
        node = params['node']
        self.check_storages(node)
        if params['clone']:
            source = self.source_of_clone(vms)
            after = {'name': params['name'], 'clone_of': '{0} ({1})'.format(source.get('name'), source['vmid'])}
        else:
            source = None
            after = create_config(params)
        self.changed = True
        self.diff['after'] = after
        if self.module.check_mode:
            return {'vmid': params['vmid'], 'node': node, 'status': 'absent'}, after

        def make(vmid):
            if source:
                options = dict(newid=vmid, name=params['name'], full=int(params['full']))
                if params['target_storage'] and params['full']:
                    options['storage'] = params['target_storage']
                if source['node'] != node:
                    options['target'] = node
                self.client.run_task(source['node'], 'post', 'nodes/{node}/qemu/{vmid}/clone'.format(**source),
                                     'clone of {0} to VM {1}'.format(source['vmid'], vmid), params['timeout'], options)
            else:
                self.client.run_task(node, 'post', 'nodes/{0}/qemu'.format(node), 'create of VM {0}'.format(vmid),
                                     params['timeout'], dict(after, vmid=vmid))
            return vmid

        if params['vmid'] is not None:
            vmid = make(params['vmid'])
        else:
            vmid = allocate_vmid(self.client, make)[0]
        vm = {'vmid': vmid, 'node': node, 'status': 'stopped'}
        if source:
            # The clone has the template's config; bring it to the options like any existing VM.
            effective = self.read_config(vm)[0]
            self.diff['after'].update(self.reconcile(vm, effective, record_diff=False))
        return vm, None

    # ------------------------------------------------------------ reconcile

    def reconcile(self, vm, effective, record_diff=True):
        """One config write (and disk grows) for the difference; returns the config after it."""
        config, deletes, resizes = plan_changes(self.params, effective)
        after = apply_plan(effective, config, deletes, resizes)
        if not (config or deletes or resizes):
            return effective
        self.changed = True
        if record_diff:
            self.diff = {'before': effective, 'after': after}
        if self.module.check_mode:
            return after
        path = 'nodes/{node}/qemu/{vmid}'.format(**vm)
        if config or deletes:
            options = dict(config)
            if deletes:
                options['delete'] = ','.join(deletes)
            self.client.put(path + '/config', **options)
        for slot, size in resizes:
            result = self.client.put(path + '/resize', disk=slot, size=size)
            if isinstance(result, str) and result.startswith('UPID:'):
                self.client.wait_task(vm['node'], result, self.params['timeout'], 'resize of {0}'.format(slot))
        return after

    # ---------------------------------------------------------------- power

    def power(self, vm, state, pending):
        path = 'nodes/{node}/qemu/{vmid}/status/'.format(**vm)
        running = vm.get('status') == 'running'
        restart = state == 'restarted' or (running and pending and self.params['restart_if_needed'])
        actions = []
        if state == 'stopped' and running:
            actions = ['shutdown']
        elif state in ('started', 'restarted') and not running:
            actions = ['start']
        elif restart and running:
            actions = ['shutdown', 'start']
        if not actions:
            return vm.get('status')
        self.changed = True
        if self.module.check_mode:
            return 'running' if actions[-1] == 'start' else 'stopped'
        for action in actions:
            what = '{0} of VM {1}'.format(action, vm['vmid'])
            if action == 'shutdown':
                # A clean shutdown first; PVE stops the VM hard when the guest does not finish in time.
                self.client.run_task(vm['node'], 'post', path + action, what,
                                     self.params['timeout'] + self.params['shutdown_timeout'],
                                     dict(timeout=self.params['shutdown_timeout'], forceStop=1))
            else:
                self.client.run_task(vm['node'], 'post', path + action, what, self.params['timeout'])
        return 'running' if actions[-1] == 'start' else 'stopped'

    def wait_for_ip(self, vm):
        deadline = time.monotonic() + self.params['timeout']
        delay = 0.5
        path = 'nodes/{node}/qemu/{vmid}/agent/network-get-interfaces'.format(**vm)
        last = 'no answer yet'
        while True:
            try:
                ips = agent_ipv4(self.client.get(path))
                if ips:
                    return ips
                last = 'no IPv4 address yet'
            except ProxmoxError as exc:  # the agent is not up yet: keep asking until the deadline
                last = str(exc)
            if time.monotonic() >= deadline:
                raise ProxmoxError('VM {0} reported no IP address within {1}s ({2})'.format(
                    vm['vmid'], self.params['timeout'], last))
            time.sleep(delay)
            delay = min(delay * 1.5, 5.0)

    # -------------------------------------------------------------- destroy

    def destroy(self, vm):
        self.changed = True
        self.diff = {'before': {'vmid': vm['vmid'], 'name': vm.get('name'), 'node': vm['node']}, 'after': {}}
        if self.module.check_mode:
            return
        path = 'nodes/{node}/qemu/{vmid}'.format(**vm)
        try:
            if vm.get('status') == 'running':
                self.client.run_task(vm['node'], 'post', path + '/status/stop', 'stop of VM {0}'.format(vm['vmid']),
                                     self.params['timeout'])
            self.client.run_task(vm['node'], 'delete', path, 'destroy of VM {0}'.format(vm['vmid']),
                                 self.params['timeout'], {'purge': 1, 'destroy-unreferenced-disks': 1})
        except ProxmoxError as exc:
            if not DOES_NOT_EXIST.search(str(exc)):
                raise
            # Gone meanwhile (another run, or an operator): that is what was asked for.

    # ------------------------------------------------------------------ run

    def run(self):
        params = self.params
        pending = []
        vm, vms = self.find()
        if params['state'] == 'absent':
            if vm is None:
                return dict(vmid=params['vmid'], node=params['node'], status='absent')
            vm = self.wait_unlocked(vm)
            effective, _pending = self.read_config(vm)
            if effective.get('protection') == '1':
                raise ProxmoxError('VM {0} ({1}) has protection set; unset it before removing the VM'.format(
                    vm['vmid'], vm.get('name')))
            self.destroy(vm)
            return dict(vmid=int(vm['vmid']), node=vm['node'], status='absent')
        if vm is None:
            vm, planned = self.create(vms)
            if self.module.check_mode:
                after_power = 'running' if params['state'] in ('started', 'restarted') else 'stopped'
                return dict(vm, status=after_power, config=planned, macs=macs(planned or {}))
        else:
            vm = self.wait_unlocked(vm)
            effective, pending = self.read_config(vm)
            self.reconcile(vm, effective)
        vm = dict(vm, vmid=int(vm['vmid']))
        if self.changed and not self.module.check_mode:
            effective, pending = self.read_config(vm)
        elif self.changed:
            effective = self.diff['after']
        status = self.power(vm, params['state'], pending)
        if status == 'running' and self.changed and not self.module.check_mode and pending:
            effective, pending = self.read_config(vm)
        result = dict(vmid=vm['vmid'], node=vm['node'], status=status, config=effective, pending=pending,
                      macs=macs(effective))
        if params['wait_for_ip'] and not self.module.check_mode:
            if status != 'running':
                raise ProxmoxError('wait_for_ip needs a running VM; VM {0} is {1}'.format(vm['vmid'], status))
            result['ips'] = self.wait_for_ip(vm)
        return result


def agent_ipv4(answer):
    """IPv4 addresses other than loopback from the agent's network-get-interfaces answer."""
    interfaces = answer.get('result', answer) if isinstance(answer, dict) else answer
    found = []
    for iface in interfaces or []:
        for addr in iface.get('ip-addresses', []):
            ip = addr.get('ip-address', '')
            if addr.get('ip-address-type') == 'ipv4' and not ip.startswith('127.'):
                found.append(ip)
    return found


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True,
                           required_one_of=[('name', 'vmid')], **CONNECTION_OPTIONS)
    result = dict(changed=False, pending=[], macs={}, ips=[], requests=0)
    client = None
    try:
        check_spec(module.params)
        client = ProxmoxClient(module.params)
        reconciler = VmReconciler(module, client)
        result.update(reconciler.run())
        result['changed'] = reconciler.changed
        if module._diff:
            result['diff'] = reconciler.diff
    except (ProxmoxError, SpecError) as exc:
        module.fail_json(msg=str(exc), requests=client.requests if client else 0,
                         **({'task_log': exc.task_log} if getattr(exc, 'task_log', None) else {}))
    result['requests'] = client.requests
    module.exit_json(**result)


if __name__ == '__main__':
    main()
