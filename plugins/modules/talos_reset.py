#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: ephemeral.castle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

DOCUMENTATION = r"""
module: talos_reset
short_description: Wipe a Talos node back to maintenance mode, only when confirmed
version_added: 0.1.0
description:
  - Resets the first of O(nodes) with C(talosctl reset) (by default gracefully, leaving etcd and
    draining first, then wiping every disk).
  - Runs only when O(confirm) is the node's name (its hostname or the address in O(nodes)) or equals
    O(gate_token), the approval token of a cleared phoenix gate. Without it the module fails and
    changes nothing, so a reset cannot happen by accident.
  - A node already in maintenance mode has nothing to reset; the module then changes nothing.
  - C(talosctl reset) waits by default (up to 30 minutes) for events it can only see while the node runs its
    config; a node wiped back to maintenance mode never sends them. So the module runs it with
    C(--wait=false) and, with O(wait), waits itself until the node no longer runs its config (gone, or in
    maintenance mode), up to O(wait_timeout) seconds.
  - In check mode the node is only read.
author:
  - ephemeral.castle maintainers (@ephemeral-castle)
extends_documentation_fragment:
  - ephemeral.castle.talos
  - ephemeral.castle.talos.ACTION_GROUP
  - ephemeral.castle.attributes
options:
  confirm:
    description:
      - The node's hostname or address, or the O(gate_token), typed out to confirm the reset.
    type: str
  gate_token:
    description:
      - Approval token recorded by the gate that cleared this node for a wipe.
    type: str
  graceful:
    description: Cordon and drain the node and leave etcd first (C(--graceful)).
    type: bool
    default: true
  reboot:
    description: Reboot into maintenance mode after the reset instead of shutting down (C(--reboot)).
    type: bool
    default: true
  wipe_mode:
    description: Which disks to wipe (C(--wipe-mode), left out for V(all), talosctl's default).
    type: str
    choices: [all, system-disk, user-disks]
    default: all
  wait:
    description: Wait until the node no longer runs its config.
    type: bool
    default: true
  wait_timeout:
    description: Seconds the node may take to leave its config (draining and leaving etcd first when O(graceful)).
    type: int
    default: 600
"""

EXAMPLES = r"""
- name: Wipe worker-2, typed out
  ephemeral.castle.talos_reset:
    talosconfig: ~/.talos/lab
    nodes: [10.0.40.22]
    confirm: worker-2

- name: Wipe the node the phoenix gate cleared
  ephemeral.castle.talos_reset:
    nodes: ["{{ phoenix_target_address }}"]
    confirm: "{{ phoenix_gate.token }}"
    gate_token: "{{ phoenix_gate.token }}"
"""

RETURN = r"""
node:
  description: The node reset.
  returned: always
  type: str
  sample: 10.0.40.22
hostname:
  description: The node's hostname, when it could be read.
  returned: when the node is configured
  type: str
  sample: worker-2
node_state:
  description: C(configured), C(maintenance) or C(unreachable), as found before the reset.
  returned: always
  type: str
  sample: configured
state_after:
  description: C(maintenance) or C(unreachable), as found once the node left its config.
  returned: when the node was reset and waited for
  type: str
  sample: unreachable
"""

import hmac

from ansible_collections.ephemeral.castle.plugins.module_utils.talos import (
    TalosError, run_module, talos_module, target_node)

# Seconds between two looks at a node being reset.
POLL = 2


def hostname_of(talosctl, node):
    """The hostname the node's config sets, else the one the node reports (from DHCP, say)."""
    try:
        for doc in talosctl.running_config(node):
            found = ((doc.get('machine') or {}).get('network') or {}).get('hostname')
            if found:
                return found
        found = talosctl.run_json(['get', 'hostname'], nodes=[node], retry=False)
    except TalosError:
        return None
    return ((found[0].get('spec') if found else None) or {}).get('hostname')


def confirmed(params, node, hostname):
    token = params['confirm'] or ''
    names = [name for name in (node, hostname) if name]
    if token in names:
        return True
    return bool(params['gate_token']) and hmac.compare_digest(token, params['gate_token'])


def reset(module, talosctl):
    params = module.params
    node = target_node(talosctl, 'reset')
    if not params['confirm']:
        raise TalosError('resetting {0} wipes it: set confirm to its name (or the gate token) to go ahead; '
                         'nothing was changed'.format(node))
    state, dummy, detail = talosctl.machine_status(node)
    result = dict(changed=False, node=node, node_state=state)
    if state == 'maintenance':
        return result  # nothing on it to wipe; its name cannot be read either
    if state == 'unreachable':
        raise TalosError('node {0} cannot be reached to reset it: {1}'.format(node, detail))
    hostname = hostname_of(talosctl, node)
    if not confirmed(params, node, hostname):
        raise TalosError('confirm does not name node {0}{1} and is not the gate token; nothing was changed'.format(
            node, ' ({0})'.format(hostname) if hostname else ''))
    if hostname:
        result['hostname'] = hostname
    result['changed'] = True
    if module._diff:
        result['diff'] = dict(before=dict(node=node, state='configured'), after=dict(node=node, state='maintenance'))
    if module.check_mode:
        return result
    args = ['reset', '--graceful={0}'.format(str(params['graceful']).lower()),
            '--reboot={0}'.format(str(params['reboot']).lower()), '--wait=false']
    if params['wipe_mode'] != 'all':
        args += ['--wipe-mode', params['wipe_mode']]
    talosctl.run(args, nodes=[node], retry=False)
    if params['wait']:
        result['state_after'] = left_config(talosctl, node, params['wait_timeout'])
    return result


def left_config(talosctl, node, timeout):
    """The node's state once it no longer answers with its config; TalosError after timeout seconds."""
    deadline = talosctl._clock() + timeout
    while True:
        state, dummy, dummy = talosctl.machine_status(node)
        if state != 'configured':
            return state
        if talosctl._clock() >= deadline:
            raise TalosError('node {0} still runs its config {1}s after the reset'.format(node, timeout))
        talosctl._sleep(POLL)


def main():
    module = talos_module(dict(
        confirm=dict(type='str'), gate_token=dict(type='str', no_log=True),
        graceful=dict(type='bool', default=True), reboot=dict(type='bool', default=True),
        wipe_mode=dict(type='str', default='all', choices=['all', 'system-disk', 'user-disks']),
        wait=dict(type='bool', default=True), wait_timeout=dict(type='int', default=600),
    ))
    run_module(module, lambda talosctl: reset(module, talosctl))


if __name__ == '__main__':
    main()
