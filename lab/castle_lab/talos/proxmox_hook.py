"""Talos nodes for the lab's Proxmox VMs: a VM that boots the Talos ISO is a Talos machine.

fakepve has no callbacks, so the hook watches the VM model's `status` and `started_at` attributes:
a VM going to running boots its node, one going to stopped powers it off, and a new start time on a
running VM (a reset) reboots it. Every change is queued per VM, so short reboots are not missed.

Addresses work like a DHCP server with reservations: the VM's net0 MAC address gets the next free
address of <lab net>.100-.199, kept in leases.json of the lab state; a VM with the guest agent
enabled reports it through the agent's network-get-interfaces.
"""

import ipaddress
import json
import logging
import pathlib

from fakepve.model import FakeVm
from fakepve.qemu import DRIVE_KEY, split_drive

from .node import Fleet

LOG = logging.getLogger('castle_lab.talos')
FIRST_HOST, LAST_HOST = 100, 199
WATCHED = ('status', 'started_at')
_MISSING = object()


class LeasesExhausted(Exception):
    """No address of the Talos range is free."""


class Leases:
    """MAC address -> reserved IPv4 address, persisted as JSON."""

    def __init__(self, path, net):
        self.path = pathlib.Path(path)
        self.net = net
        self.by_mac = json.loads(self.path.read_text()) if self.path.exists() else {}

    def address(self, mac):
        mac = mac.lower()
        if mac not in self.by_mac:
            taken = set(self.by_mac.values())
            free = (('{0}.{1}'.format(self.net, host)) for host in range(FIRST_HOST, LAST_HOST + 1))
            chosen = next((address for address in free if address not in taken), None)
            if chosen is None:
                raise LeasesExhausted('no free address in {0}.{1}-{2}'.format(self.net, FIRST_HOST, LAST_HOST))
            self.by_mac[mac] = chosen
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(json.dumps(self.by_mac, indent=1, sort_keys=True) + '\n')
        return self.by_mac[mac]


def net0_mac(vm):
    """The MAC address of the VM's net0 (`virtio=BC:24:11:...,bridge=vmbr0`), or None."""
    for part in str(vm.config.get('net0', '')).split(','):
        key, _sep, value = part.partition('=')
        if key in ('virtio', 'e1000', 'e1000e', 'rtl8139', 'vmxnet3', 'macaddr') and value:
            return value.lower()
    return None


def boots_talos(vm):
    """Whether a CD-ROM drive of the VM holds a Talos ISO."""
    for key, value in vm.config.items():
        if DRIVE_KEY.match(key):
            volume, props = split_drive(value)
            if props.get('media') == 'cdrom' and '/talos-' in (volume or '') and volume.endswith('.iso'):
                return True
    return False


def agent_enabled(vm):
    value = str(vm.config.get('agent', '0'))
    first = value.split(',')[0]
    return first in ('1', 'enabled=1') or 'enabled=1' in value


def agent_interfaces(mac, address):
    return [{'name': 'lo', 'hardware-address': '00:00:00:00:00:00',
             'ip-addresses': [{'ip-address': '127.0.0.1', 'ip-address-type': 'ipv4', 'prefix': 8}]},
            {'name': 'eth0', 'hardware-address': mac,
             'ip-addresses': [{'ip-address': address, 'ip-address-type': 'ipv4', 'prefix': 24}]}]


class TalosMachines:
    """Connects VM power changes to the Fleet's nodes."""

    def __init__(self, state, net):
        self.fleet = Fleet(state)
        self.fleet.on_shutdown = self._node_shut_down
        self.leases = Leases(pathlib.Path(state) / 'leases.json', net)
        self.vms = {}
        self.hanging = set()  # names of VMs whose Talos boot hangs: no node, no guest agent
        ipaddress.ip_address('{0}.{1}'.format(net, FIRST_HOST))

    def install(self, pve=None):
        """Watch every VM's power; with `pve`, also a reset of its guests to the initial ones."""
        machines = self
        if pve is not None:
            pve.on_guests_replaced.append(lambda: self.guests_replaced(pve.vms))
            self.fleet.exists = lambda vmid: any(vm.vmid == vmid for vm in pve.vms)

        def watched_setattr(vm, name, value):
            old = vm.__dict__.get(name, _MISSING) if name in WATCHED else None
            object.__setattr__(vm, name, value)
            if name in WATCHED and old is not _MISSING and old != value:
                machines.changed(vm, name, old, value)
        FakeVm.__setattr__ = watched_setattr

    def changed(self, vm, name, old, value):
        if name == 'status':
            if value == 'running':
                vm.__dict__['_talos_started'] = True
                self._on(vm)
            elif old == 'running':
                self._off(vm)
        elif vm.__dict__.pop('_talos_started', False) is False and vm.__dict__.get('status') == 'running':
            self._off(vm)
            self._on(vm)

    def guests_replaced(self, vms):
        """The guests were swapped without power changes: machines no longer running lose their node."""
        running = {vm.vmid for vm in vms if vm.__dict__.get('status') == 'running'}
        for vmid in list(self.vms):
            if vmid not in running:
                self.vms.pop(vmid)
                self.fleet.switch(vmid, False)

    def _is_talos(self, vm):
        node = self.fleet.nodes.get(vm.vmid)
        installed = node is not None and node.configured and node.mac == net0_mac(vm)
        return net0_mac(vm) is not None and (boots_talos(vm) or installed)

    def _on(self, vm):
        if not self._is_talos(vm):
            return
        if vm.config.get('name', vm.name) in self.hanging:
            LOG.warning('VM %s (%s): Talos boot hangs (castle-lab talos-hang)', vm.vmid, vm.config.get('name'))
            return
        mac = net0_mac(vm)
        try:
            address = self.leases.address(mac)
        except LeasesExhausted as exc:
            LOG.error('VM %s: %s', vm.vmid, exc)
            return
        self.vms[vm.vmid] = vm
        self.fleet.switch(vm.vmid, True, address, mac)
        if agent_enabled(vm):
            vm.agent = {'interfaces': agent_interfaces(mac, address)}

    def _off(self, vm):
        if vm.vmid in self.fleet.power:
            self.fleet.switch(vm.vmid, False)
        if self.vms.pop(vm.vmid, None) is not None and agent_enabled(vm):
            vm.agent = None

    def _node_shut_down(self, node):
        """A node that powered itself off (reset without reboot): its VM stops."""
        for vmid, candidate in self.fleet.nodes.items():
            vm = self.vms.get(vmid)
            if candidate is node and vm is not None and vm.status == 'running':
                vm.status = vm.qmpstatus = 'stopped'

    async def close(self):
        await self.fleet.close()
