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
  - Runs only with the phoenix gate's consent, O(gate_token), issued by M(ephemeral.castle.fleet_gate) for
    the fleet node this node is (its hostname); otherwise the module fails and changes nothing, so a reset
    cannot happen by accident. The use is recorded in O(gate_journal).
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
  - ephemeral.castle.gate
options:
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
- name: Clear worker-2 for a wipe
  ephemeral.castle.fleet_gate:
    src: site/castle.fleet.yml
    machine: worker-2
    journal: site/phoenix-journal.md
  register: phoenix_gate

- name: Wipe worker-2 with the gate's consent
  ephemeral.castle.talos_reset:
    talosconfig: ~/.talos/lab
    nodes: [10.0.40.22]
    gate_token: "{{ phoenix_gate.token }}"
    gate_journal: site/phoenix-journal.md
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

from ansible_collections.ephemeral.castle.plugins.module_utils import gate
from ansible_collections.ephemeral.castle.plugins.module_utils._wait import Deadline, wait_until
from ansible_collections.ephemeral.castle.plugins.module_utils.base import option, run_module, wait_options
from ansible_collections.ephemeral.castle.plugins.module_utils.talos import TALOS, TalosError, Talosctl, target_node

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


def reset(module, talosctl):
    params = module.params
    node = target_node(talosctl, 'reset')
    token, journal = params['gate_token'], params['gate_journal']
    if not module.check_mode:
        gate.check_given(token, journal, [node], 'reset')
    state, dummy, detail = talosctl.machine_status(node)
    result = dict(changed=False, node=node, node_state=state)
    if state == 'maintenance':
        return result  # nothing on it to wipe
    if state == 'unreachable':
        raise TalosError('node {0} cannot be reached to reset it: {1}'.format(node, detail))
    hostname = hostname_of(talosctl, node)
    if not hostname:
        raise TalosError('cannot read the hostname of node {0}, which the gate token must clear; nothing was '
                         'changed'.format(node))
    result['hostname'] = hostname
    if token or not module.check_mode:
        (gate.check if module.check_mode else gate.consume)(journal, token, [hostname], 'reset')
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
    def left():
        state = talosctl.machine_status(node)[0]
        return state if state != 'configured' else None

    def late():
        return TalosError('node {0} still runs its config {1}s after the reset'.format(node, timeout))
    return wait_until(left, Deadline(timeout, talosctl._clock), late, interval=POLL, max_interval=POLL,
                      sleep=talosctl._sleep)


def main():
    module = TALOS.module(dict(
        gate_token=option('str', no_log=True), gate_journal=option('path'),
        graceful=option('bool', True), reboot=option('bool', True),
        wipe_mode=option('str', 'all', choices=['all', 'system-disk', 'user-disks']),
        **wait_options(600)
    ))
    with Talosctl(module) as talosctl:
        run_module(module, lambda: reset(module, talosctl))


if __name__ == '__main__':
    main()
