"""Talos nodes for the lab's Proxmox VMs: a VM that boots the Talos ISO is a Talos machine.

fakepve has no callbacks, so the hook watches the VM model's `status` and `started_at` attributes:
a VM going to running boots its node, one going to stopped powers it off, and a new start time on a
running VM (a reset) reboots it. Every change is queued per VM, so short reboots are not missed.

Addresses work like a DHCP server with reservations: the VM's net0 MAC address gets the next free
address of <lab net>.100-.199, kept in leases.json of the lab state. A node runs only the system extensions of
what it booted: in maintenance mode those of the ISO in its CD-ROM drive (an Image Factory ISO names them, a stock
ISO has none), once installed those of the installer image of its config (a factory installer, resolved through
the lab factory's schematics; ghcr.io/siderolabs/installer has none). Its guest agent answers (the VM's
network-get-interfaces) only when the VM has the agent enabled and the node runs siderolabs/qemu-guest-agent; it
reports the NIC under the name Talos gives it (ens18) with the addresses the node holds.
"""

import ipaddress
import json
import logging
import pathlib

from fakepve.model import FakeVm
from fakepve.qemu import DRIVE_KEY, split_drive

from . import network
from .factory import Store, installer_schematic, read_iso
from .fleet import Fleet

LOG = logging.getLogger('castle_lab.talos')
GUEST_AGENT = 'siderolabs/qemu-guest-agent'
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
    return boot_volume(vm) is not None


def boot_volume(vm):
    """The volume of the VM's CD-ROM drive that holds a Talos ISO, or None."""
    for key, value in vm.config.items():
        if DRIVE_KEY.match(key):
            volume, props = split_drive(value)
            if props.get('media') == 'cdrom' and '/talos-' in (volume or '') and volume.endswith('.iso'):
                return volume
    return None


def agent_enabled(vm):
    value = str(vm.config.get('agent', '0'))
    first = value.split(',')[0]
    return first in ('1', 'enabled=1') or 'enabled=1' in value


def agent_interfaces(node):
    """network-get-interfaces of a running node (QEMU guest-agent shape): its links under their Talos names
    (the NIC is ens18, not eth0), each with the addresses the node holds on it."""
    found = []
    for name, link in network.links(node.mac).items():
        ips = []
        for held, cidr in node.network_addresses():
            if held == name:
                interface = ipaddress.ip_interface(cidr)
                ips.append({'ip-address': str(interface.ip), 'prefix': interface.network.prefixlen,
                            'ip-address-type': 'ipv4' if interface.version == 4 else 'ipv6'})
        found.append({'name': name, 'hardware-address': link['hardwareAddr'], 'ip-addresses': ips})
    return found


class TalosMachines:
    """Connects VM power changes to the Fleet's nodes."""

    def __init__(self, state, net):
        self.fleet = Fleet(state)
        self.fleet.on_shutdown = self._node_shut_down
        self.leases = Leases(pathlib.Path(state) / 'leases.json', net)
        self.vms = {}
        self.hanging = set()  # names of VMs whose Talos boot hangs: no node, no guest agent
        self.pve = None
        self.media = {}  # vmid -> what the ISO the VM booted carries (read_iso), None for a stock ISO
        self.schematics = Store(pathlib.Path(state).parent / 'factory' / 'schematics')
        self.fleet.on_boot = self._node_booted
        ipaddress.ip_address('{0}.{1}'.format(net, FIRST_HOST))

    def install(self, pve=None):
        """Watch every VM's power; with `pve`, also a reset of its guests to the initial ones."""
        machines = self
        self.pve = pve
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
        self.media[vm.vmid] = self._iso_of(vm)
        self.fleet.switch(vm.vmid, True, address, mac)

    def _iso_of(self, vm):
        volume = boot_volume(vm)
        reader = getattr(self.pve, 'volume_bytes', None)
        if volume is None or reader is None:
            return None
        try:
            return read_iso(reader(vm.node, volume))
        except (OSError, ValueError) as exc:
            LOG.warning('VM %s: its ISO %s could not be read: %s', vm.vmid, volume, exc)
            return None

    def _node_booted(self, node):
        """A node boots: it runs the extensions of its boot medium, and the guest agent only as one of them."""
        vmid = next((key for key, candidate in self.fleet.nodes.items() if candidate is node), None)
        if node.configured:
            image = ((node.document.get('machine') or {}).get('install') or {}).get('image')
            node.extensions = installer_schematic(image, self.schematics) or (None, [])
        else:
            iso = self.media.get(vmid)
            node.extensions = (iso['schematic'], list(iso['extensions'])) if iso else (None, [])
        vm = self.vms.get(vmid)
        if vm is not None and agent_enabled(vm):
            runs_agent = GUEST_AGENT in node.extensions[1]
            vm.agent = {'interfaces': agent_interfaces(node)} if runs_agent else None

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
