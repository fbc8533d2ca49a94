# -*- coding: utf-8 -*-
# Copyright: ephemeral.castle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Filters of the proxmox_vms role: waves with a cap per Proxmox node, and what each wave gave."""

from ansible.errors import AnsibleFilterError


def proxmox_waves(vms, per_node):
    if not isinstance(per_node, int) or per_node < 1:
        raise AnsibleFilterError('proxmox_waves: per_node must be a whole number of 1 or more, not {0!r}'.format(
            per_node))
    waves = []
    counts = []
    for vm in vms:
        if not isinstance(vm, dict) or not vm.get('node'):
            raise AnsibleFilterError('proxmox_waves: every VM needs a node; got {0!r}'.format(vm))
        for index, wave_counts in enumerate(counts):
            if wave_counts.get(vm['node'], 0) < per_node:
                break
        else:
            index = len(waves)
            waves.append([])
            counts.append({})
        waves[index].append(vm)
        counts[index][vm['node']] = counts[index].get(vm['node'], 0) + 1
    return waves


def proxmox_wave_outcome(results):
    """From a wave's registered loop results (async_status ones, or the module's own in check mode),
    {'ok': {name: {vmid, node, status, macs, ips}}, 'failed': {name: message}}."""
    outcome = {'ok': {}, 'failed': {}}
    for result in results:
        vm = (result.get('job') or {}).get('vm') or result.get('vm') or {}
        name = vm.get('name', '?')
        if result.get('failed') or not result.get('finished', True):
            outcome['failed'][name] = result.get('msg') or 'did not finish in time'
        else:
            outcome['ok'][name] = dict((k, result.get(k)) for k in ('vmid', 'node', 'status', 'macs', 'ips'))
    return outcome


class FilterModule(object):
    def filters(self):
        return {'proxmox_waves': proxmox_waves, 'proxmox_wave_outcome': proxmox_wave_outcome}
