# -*- coding: utf-8 -*-
# Copyright: ephemeral.castle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Reconciling one Proxmox VE VM with its description: find, create or clone (and migrate to its node),
one config write, disk grows, power state. PRIVATE to the collection; used by proxmox_vm and proxmox_vm_batch."""

from ansible_collections.ephemeral.castle.plugins.module_utils import gate
from ansible_collections.ephemeral.castle.plugins.module_utils.base import option
from ansible_collections.ephemeral.castle.plugins.module_utils.proxmox import (
    DOES_NOT_EXIST, ProxmoxError, allocate_vmid)
from ansible_collections.ephemeral.castle.plugins.module_utils.proxmox_vm_guest import (
    reported_ips, wait_for_ip, wait_unlocked)
from ansible_collections.ephemeral.castle.plugins.module_utils.proxmox_vm_placement import (
    check_storages, clone_route, migrate, source_of_clone)
from ansible_collections.ephemeral.castle.plugins.module_utils.proxmox_vm_spec import (
    NET_MODELS, apply_plan, create_config, macs, plan_changes)

HIDDEN_KEYS = ('digest',)


def vm_argument_spec():
    """The options that describe one VM (proxmox_vm's own, without the connection)."""
    spec = dict(
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
        wait_timeout=option('int', 600, aliases=['timeout']),
        shutdown_timeout=dict(type='int', default=120),
    )
    return spec


# The phoenix gate's consent, needed to remove a VM (doc fragment ephemeral.castle.gate).
GATE_ARGUMENT_SPEC = dict(gate_token=dict(type='str', no_log=True), gate_journal=dict(type='path'))


def argument_spec():
    """proxmox_vm's options besides the connection (which the layer adds)."""
    return dict(vm_argument_spec(), **GATE_ARGUMENT_SPEC)


class VmReconciler(object):
    """Reads the VM once, works out the change, writes once; every request goes through the client."""

    def __init__(self, client, params, check_mode, claims=None):
        self.params = params
        self.client = client
        self.check_mode = check_mode
        self.claims = claims
        self.changed = False
        self.diff = {'before': {}, 'after': {}}
        # The node a VM is moved to (in check mode it is still on its old one).
        self.moved_to = None

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

    def wait_unlocked(self, vm):
        return wait_unlocked(self.client, vm, self.params['wait_timeout'])

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

    def migrate(self, vm, node):
        return migrate(self.client, vm, node, self.params['target_storage'], self.params['wait_timeout'])

    def move(self, vm):
        """A VM found on another node than `node` (a clone whose migration did not finish, or a VM moved by
        hand) is migrated there offline; a running one is refused rather than stopped."""
        node = self.params['node']
        if vm.get('status') == 'running':
            raise ProxmoxError('VM {0} ({1}) runs on node {2}, not on node {3}: stop it to let it migrate offline, '
                               'or set node to {2}'.format(vm['vmid'], vm.get('name'), vm['node'], node))
        self.changed = True
        self.moved_to = node
        if self.check_mode:
            return vm
        return self.migrate(vm, node)

    def create(self, vms):
        params = self.params
        if not params['name']:
            raise ProxmoxError('name is required to create a VM')
        if not params['node']:
            raise ProxmoxError('node is required to create VM {0!r}'.format(params['name']))
        node = params['node']
        if params['clone']:
            # A clone is reconciled after it is made: refuse an unknown storage before copying anything.
            check_storages(self.client, params, node)
            source = source_of_clone(vms, params['clone'])
            route, local = clone_route(self.client, params, source, node)
            after = {'name': params['name'], 'clone_of': '{0} ({1})'.format(source.get('name'), source['vmid'])}
            if route == 'migrate':
                after['placement'] = 'cloned on node {0}, then migrated offline to node {1} (storage {2} not ' \
                    'shared)'.format(source['node'], node, ', '.join(local))
        else:
            source, route = None, None
            after = create_config(params)
        self.changed = True
        self.diff['after'] = after
        if self.check_mode:
            return {'vmid': params['vmid'], 'node': node, 'status': 'absent'}, after

        def make(vmid):
            if source:
                options = dict(newid=vmid, name=params['name'], full=int(params['full']))
                if params['target_storage'] and params['full']:
                    options['storage'] = params['target_storage']
                if route == 'target':
                    options['target'] = node
                self.client.run_task(source['node'], 'post', 'nodes/{node}/qemu/{vmid}/clone'.format(**source),
                                     'clone of {0} to VM {1}'.format(source['vmid'], vmid), params['wait_timeout'],
                                     options)
            else:
                self.client.run_task(node, 'post', 'nodes/{0}/qemu'.format(node), 'create of VM {0}'.format(vmid),
                                     params['wait_timeout'], dict(after, vmid=vmid))
            return vmid

        if params['vmid'] is not None:
            vmid = make(params['vmid'])
        else:
            vmid = allocate_vmid(self.client, make, claims=self.claims)[0]
        vm = {'vmid': vmid, 'node': node, 'status': 'stopped'}
        if route == 'migrate':
            self.migrate(dict(vm, node=source['node']), node)
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
        if self.check_mode:
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
                self.client.wait_task(vm['node'], result, self.params['wait_timeout'], 'resize of {0}'.format(slot))
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
        if self.check_mode:
            return 'running' if actions[-1] == 'start' else 'stopped'
        for action in actions:
            what = '{0} of VM {1}'.format(action, vm['vmid'])
            if action == 'shutdown':
                # A clean shutdown first; PVE stops the VM hard when the guest does not finish in time.
                self.client.run_task(vm['node'], 'post', path + action, what,
                                     self.params['wait_timeout'] + self.params['shutdown_timeout'],
                                     dict(timeout=self.params['shutdown_timeout'], forceStop=1))
            else:
                self.client.run_task(vm['node'], 'post', path + action, what, self.params['wait_timeout'])
        return 'running' if actions[-1] == 'start' else 'stopped'

    # -------------------------------------------------------------- destroy

    def destroy(self, vm):
        token, journal = self.params.get('gate_token'), self.params.get('gate_journal')
        if not self.check_mode:
            gate.consume(journal, token, [vm.get('name') or str(vm['vmid'])], 'destroy')
        elif token:
            gate.check(journal, token, [vm.get('name') or str(vm['vmid'])], 'destroy')
        self.changed = True
        self.diff = {'before': {'vmid': vm['vmid'], 'name': vm.get('name'), 'node': vm['node']}, 'after': {}}
        if self.check_mode:
            return
        path = 'nodes/{node}/qemu/{vmid}'.format(**vm)
        try:
            if vm.get('status') == 'running':
                self.client.run_task(vm['node'], 'post', path + '/status/stop', 'stop of VM {0}'.format(vm['vmid']),
                                     self.params['wait_timeout'])
            self.client.run_task(vm['node'], 'delete', path, 'destroy of VM {0}'.format(vm['vmid']),
                                 self.params['wait_timeout'], {'purge': 1, 'destroy-unreferenced-disks': 1})
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
            if self.check_mode:
                after_power = 'running' if params['state'] in ('started', 'restarted') else 'stopped'
                return dict(vm, status=after_power, config=planned, macs=macs(planned or {}))
        else:
            vm = self.wait_unlocked(vm)
            moved_from = vm['node'] if params['node'] and vm['node'] != params['node'] else None
            if moved_from:
                vm = self.move(vm)
            effective, pending = self.read_config(vm)
            self.reconcile(vm, effective)
            if moved_from:
                self.diff = {'before': dict(self.diff['before'], node=moved_from),
                             'after': dict(self.diff['after'], node=params['node'])}
        vm = dict(vm, vmid=int(vm['vmid']))
        if self.changed and not self.check_mode:
            effective, pending = self.read_config(vm)
        elif self.changed:
            effective = self.diff['after']
        status = self.power(vm, params['state'], pending)
        if status == 'running' and self.changed and not self.check_mode and pending:
            effective, pending = self.read_config(vm)
        result = dict(vmid=vm['vmid'], node=self.moved_to or vm['node'], status=status, config=effective,
                      pending=pending, macs=macs(effective))
        if params['wait_for_ip'] and not self.check_mode:
            if status != 'running':
                raise ProxmoxError('wait_for_ip needs a running VM; VM {0} is {1}'.format(vm['vmid'], status))
            result['ips'] = wait_for_ip(self.client, vm, self.params['wait_timeout'])
        elif params['wait_for_ip'] and status == 'running' and vm.get('status') == 'running':
            # Check mode: what a VM that already runs reports now, without waiting.
            result['ips'] = reported_ips(self.client, vm)
        return result
