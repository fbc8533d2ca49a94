#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: ephemeral.castle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

DOCUMENTATION = r"""
module: talos_apply
short_description: Apply a machine config to a Talos node
version_added: 0.1.0
description:
  - Applies a machine config to the first of O(nodes) with C(talosctl apply-config).
  - A node waiting in maintenance mode gets it over the insecure maintenance API (C(--insecure)); a
    configured node over mTLS with the talosconfig. Which one is found out by asking the node, unless
    O(insecure) says.
  - Does nothing when the node already runs the same config.
  - In check mode, the node is asked what would happen (C(--dry-run)); its answer is returned in
    RV(dry_run).
author:
  - ephemeral.castle maintainers (@ephemeral-castle)
extends_documentation_fragment:
  - ephemeral.castle.talos
  - ephemeral.castle.talos.ACTION_GROUP
  - ephemeral.castle.attributes
options:
  config:
    description:
      - The machine config (YAML), as returned by M(ephemeral.castle.talos_machine_config).
      - One of O(config) and O(config_path) is required.
    type: str
  config_path:
    description: File holding the machine config.
    type: path
  mode:
    description:
      - How the node takes the config (C(--mode)). V(auto) reboots only when the change needs it;
        V(staged) applies it at the next reboot.
    type: str
    choices: [auto, no-reboot, reboot, staged]
    default: auto
  insecure:
    description:
      - V(true) applies over the maintenance API, V(false) over mTLS. Unset, the node's state decides.
    type: bool
"""

EXAMPLES = r"""
- name: Apply the rendered config to a node fresh from its ISO
  ephemeral.castle.talos_apply:
    config: "{{ cp1_config.config }}"
    nodes: [10.0.40.11]
  no_log: true

- name: Change a configured node's config without a reboot
  ephemeral.castle.talos_apply:
    config_path: /secure/cp-1.yaml
    mode: no-reboot
    talosconfig: ~/.talos/lab
    nodes: [10.0.40.11]
"""

RETURN = r"""
node:
  description: The node the config was applied to.
  returned: always
  type: str
  sample: 10.0.40.11
node_state:
  description: C(maintenance) or C(configured), as found before applying.
  returned: always
  type: str
  sample: maintenance
config_sha256:
  description: SHA-256 digest of the config applied.
  returned: always
  type: str
  sample: 3b1f0c5e8a2d4f6b9c7e1a0d2f4b6c8e0a1c3e5f7b9d1f3a5c7e9b1d3f5a7c9e
dry_run:
  description: What the node said it would do with the config.
  returned: in check mode, when the config differs
  type: str
  sample: "Dry run summary:\nApplied configuration without a reboot (skipped in dry-run).\n"
stdout:
  description: What C(talosctl apply-config) printed.
  returned: when the config was applied
  type: str
  sample: "Applied configuration without a reboot\n"
"""

from ansible_collections.ephemeral.castle.plugins.module_utils.talos import (
    TalosError, comparable, config_diff, digest, load_config, run_module, talos_module, target_node)


def apply(module, talosctl):
    params = module.params
    node = target_node(talosctl, 'apply the config to')
    text = params['config']
    if text is None:
        try:
            with open(params['config_path']) as handle:
                text = handle.read()
        except (IOError, OSError) as exc:
            raise TalosError('config_path {0}: {1}'.format(params['config_path'], exc))
    try:
        desired = load_config(text)
    except TalosError as exc:
        raise TalosError('config is not a machine config: {0}'.format(exc))
    if not desired:
        raise TalosError('config is empty')
    if params['insecure'] is None:
        state, dummy, detail = talosctl.machine_status(node)
        if state == 'unreachable':
            raise TalosError('node {0} answers neither over mTLS nor on the maintenance API: {1}'.format(node, detail))
    else:
        state = 'maintenance' if params['insecure'] else 'configured'
    running = talosctl.running_config(node) if state == 'configured' else None
    result = dict(changed=False, node=node, node_state=state, config_sha256=digest(text))
    if running is not None and comparable(running) == comparable(desired):
        return result
    result['changed'] = True
    if module._diff:
        result['diff'] = config_diff(running, desired)
    path = talosctl.secret_file('config.yaml', text)
    args = ['apply-config', '--file', path, '--mode', params['mode']]
    insecure = state == 'maintenance'
    if module.check_mode:
        result['dry_run'] = talosctl.run(args + ['--dry-run'], nodes=[node], insecure=insecure)
        return result
    result['stdout'] = talosctl.run(args, nodes=[node], insecure=insecure)
    return result


def main():
    module = talos_module(dict(
        config=dict(type='str', no_log=True), config_path=dict(type='path'),
        mode=dict(type='str', default='auto', choices=['auto', 'no-reboot', 'reboot', 'staged']),
        insecure=dict(type='bool'),
    ), required_one_of=[('config', 'config_path')], mutually_exclusive=[('config', 'config_path')])
    run_module(module, lambda talosctl: apply(module, talosctl))


if __name__ == '__main__':
    main()
