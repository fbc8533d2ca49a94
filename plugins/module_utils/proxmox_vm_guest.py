# -*- coding: utf-8 -*-
# Copyright: ephemeral.castle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Waiting on a Proxmox VE VM: for a running task's lock to go, and for the guest agent to report addresses.
PRIVATE to the collection. Every wait sleeps and reads the time through the client (client.sleep, client.clock)."""

from ansible_collections.ephemeral.castle.plugins.module_utils._wait import Deadline, wait_until
from ansible_collections.ephemeral.castle.plugins.module_utils.proxmox import DOES_NOT_EXIST, ProxmoxError

AGENT_HINT = (': no QEMU guest agent runs in the guest (a Talos node runs one only with the '
              'siderolabs/qemu-guest-agent system extension)')


def wait_unlocked(client, vm, timeout):
    """The VM once no running task (clone, create, backup...) holds its lock: it is waited for, not written to."""
    if not vm.get('lock'):
        return vm
    state = {'vm': vm}

    def unlocked():
        current = state['vm']
        try:
            answer = client.get('nodes/{node}/qemu/{vmid}/status/current'.format(**current))
        except ProxmoxError as exc:
            # A migration (lock `migrate`) that finished meanwhile: the VM is on its new node now.
            moved = [v for v in client.vms() if int(v['vmid']) == int(current['vmid'])]
            if not DOES_NOT_EXIST.search(str(exc)) or not moved or moved[0]['node'] == current['node']:
                raise
            state['vm'] = dict(current, node=moved[0]['node'], status=moved[0].get('status'), lock=moved[0].get('lock'))
            return None if state['vm'].get('lock') else state['vm']
        # status/current leaves `lock` out once the VM is free.
        state['vm'] = dict(current, status=answer.get('status', current.get('status')), lock=answer.get('lock'))
        return None if state['vm'].get('lock') else state['vm']

    return wait_until(unlocked, Deadline(timeout, client.clock), lambda: ProxmoxError(
        'VM {0} is still locked ({1}) after {2}s'.format(state['vm']['vmid'], state['vm']['lock'], timeout)),
        interval=0.2, max_interval=2.0, sleep=client.sleep)


def _agent_interfaces(client, vm):
    """The agent's answer, asked once: "agent not running" is a 500 that only time cures, not a retry."""
    retries, client.retries = client.retries, 0
    try:
        return client.get('nodes/{node}/qemu/{vmid}/agent/network-get-interfaces'.format(**vm))
    finally:
        client.retries = retries


def wait_for_ip(client, vm, timeout):
    """The IPv4 addresses the guest agent reports, once it reports any."""
    last = {'why': 'no answer yet'}

    def addresses():
        try:
            ips = agent_ipv4(_agent_interfaces(client, vm))
        except ProxmoxError as exc:
            last['why'] = str(exc)
            return None
        last['why'] = 'no IPv4 address yet'
        return ips

    return wait_until(addresses, Deadline(timeout, client.clock), lambda: ProxmoxError(
        'VM {0} reported no IP address within {1}s ({2}){3}'.format(
            vm['vmid'], timeout, last['why'], AGENT_HINT if 'agent is not running' in last['why'] else '')),
        interval=0.5, max_interval=5.0, sleep=client.sleep)


def reported_ips(client, vm):
    """What the agent of a running VM reports now, without waiting ([] when it does not answer)."""
    try:
        return agent_ipv4(_agent_interfaces(client, vm))
    except ProxmoxError:
        return []


def agent_ipv4(answer):
    """IPv4 addresses of the guest's interfaces but its loopback one (`lo`, 127.0.0.1), from the agent's
    network-get-interfaces answer."""
    interfaces = answer.get('result', answer) if isinstance(answer, dict) else answer
    found = []
    for iface in interfaces or []:
        if iface.get('name') == 'lo':
            continue
        for addr in iface.get('ip-addresses', []):
            ip = addr.get('ip-address', '')
            if addr.get('ip-address-type') == 'ipv4' and ip != '127.0.0.1':
                found.append(ip)
    return found
