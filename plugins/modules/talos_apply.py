#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: ephemeral.castle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

DOCUMENTATION = r"""
module: talos_apply
short_description: Apply machine configs to Talos nodes
version_added: 0.1.0
description:
  - Applies a machine config to the first of O(nodes) with C(talosctl apply-config).
  - A node waiting in maintenance mode gets it over the insecure maintenance API (C(--insecure)); a
    configured node over mTLS with the talosconfig. Which one is found out by asking the node, unless
    O(insecure) says; with O(configs), one call asks every node, and only when some node does not answer
    over mTLS is each node asked on its own.
  - The maintenance API takes the modes V(auto), V(reboot) and V(try) only (it installs the config and
    reboots whatever the mode), so a node in maintenance mode gets V(auto) when O(mode) is V(no-reboot) or
    V(staged), in check mode too.
  - Does nothing when the node already runs the same config.
  - In check mode, the node is asked what would happen (C(--dry-run)); its answer is returned in
    RV(dry_run).
  - talosctl writes its answer (the mode details and any warnings) on stderr; it is returned in RV(answer).
  - With O(configs), applies a config to each of several nodes concurrently, in one run; the answer of
    each node is returned in RV(nodes). A node that fails does not stop the others; the module then fails
    naming each failed node.
  - An insecure apply that fails, for example when its connection drops after the node took the
    config and rebooted, is not an error if the node now runs exactly that config.
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
      - One of O(config), O(config_path) and O(configs) is required.
    type: str
  config_path:
    description: File holding the machine config.
    type: path
  mode:
    description:
      - How a configured node takes the config (C(--mode)). V(auto) reboots only when the change needs it;
        V(staged) applies it at the next reboot; V(try) rolls it back after C(--timeout) (1 minute).
      - A node in maintenance mode takes V(auto), V(reboot) and V(try) only; V(no-reboot) and V(staged) are
        sent to it as V(auto).
    type: str
    choices: [auto, no-reboot, reboot, staged, try]
    default: auto
  insecure:
    description:
      - V(true) applies over the maintenance API, V(false) over mTLS. Unset, the node's state decides.
    type: bool
  configs:
    description:
      - Machine configs of several nodes, by node address; O(nodes) is not used then.
    type: dict
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

- name: Apply every node's config at once
  ephemeral.castle.talos_apply:
    configs:
      10.0.40.11: "{{ cluster_configs.configs['cp-1'].config }}"
      10.0.40.21: "{{ cluster_configs.configs['w-1'].config }}"
    talosconfig: ~/.talos/lab
    endpoints: [10.0.40.11]
"""

RETURN = r"""
node:
  description: The node the config was applied to.
  returned: without O(configs)
  type: str
  sample: 10.0.40.11
node_state:
  description: C(maintenance) or C(configured), as found before applying.
  returned: without O(configs)
  type: str
  sample: maintenance
config_sha256:
  description: SHA-256 digest of the config applied.
  returned: without O(configs)
  type: str
  sample: 3b1f0c5e8a2d4f6b9c7e1a0d2f4b6c8e0a1c3e5f7b9d1f3a5c7e9b1d3f5a7c9e
mode:
  description: The mode the config was sent with (V(auto) for a node in maintenance mode asked for V(no-reboot)
    or V(staged)).
  returned: when the config differs
  type: str
  sample: auto
dry_run:
  description: What the node said it would do with the config (talosctl's stderr).
  returned: in check mode, when the config differs
  type: str
  sample: "Dry run summary:\nApplied configuration without a reboot (skipped in dry-run).\n"
answer:
  description:
    - What the node answered, as talosctl wrote it on stderr (warnings, then the mode details). A node in
      maintenance mode answers nothing but warnings.
  returned: when the config was applied
  type: str
  sample: "Applied configuration without a reboot\n"
nodes:
  description:
    - With O(configs), what each node that came out right returned (RV(node_state), RV(config_sha256),
      C(changed), RV(mode), RV(dry_run) or RV(answer)), by address.
  returned: with O(configs)
  type: dict
  sample: {"10.0.40.11": {"changed": true, "node_state": "maintenance", "config_sha256": "3b1f0c5e",
           "mode": "auto", "answer": ""}}
failed_nodes:
  description: With O(configs), the error of each node that failed, by address.
  returned: with O(configs)
  type: dict
  sample: {"10.0.40.21": "node 10.0.40.21 answers neither over mTLS nor on the maintenance API"}
"""

from concurrent.futures import ThreadPoolExecutor

from ansible_collections.ephemeral.castle.plugins.module_utils.base import option, run_module
from ansible_collections.ephemeral.castle.plugins.module_utils.talos import TALOS, TalosError, Talosctl, target_node
from ansible_collections.ephemeral.castle.plugins.module_utils.talos_documents import comparable, config_diff, digest, load_config

# Most nodes applied to at the same time.
APPLIERS = 16
# What the maintenance service takes (internal/app/maintenance: any other mode is Unimplemented, dry run too).
MAINTENANCE_MODES = ('auto', 'reboot', 'try')


def read_config(params):
    text = params['config']
    if text is None:
        try:
            with open(params['config_path']) as handle:
                text = handle.read()
        except (IOError, OSError) as exc:
            raise TalosError('config_path {0}: {1}'.format(params['config_path'], exc))
    return text


def apply_one(module, talosctl, node, text, label='', status=None):
    """Apply text to node; status: what machine_status said of the node, when it was asked already."""
    params = module.params
    try:
        desired = load_config(text)
    except TalosError as exc:
        raise TalosError('{0}config is not a machine config: {1}'.format(label, exc))
    if not desired:
        raise TalosError('{0}config is empty'.format(label))
    if params['insecure'] is None:
        state, dummy, detail = status or talosctl.machine_status(node)
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
    path = talosctl.secret_file('config-{0}.yaml'.format(node.replace(':', '_').replace('/', '_')), text)
    insecure = state == 'maintenance'
    mode = params['mode'] if not insecure or params['mode'] in MAINTENANCE_MODES else 'auto'
    result['mode'] = mode
    args = ['apply-config', '--file', path, '--mode', mode]
    if module.check_mode:
        result['dry_run'] = talosctl.run_both(args + ['--dry-run'], nodes=[node], insecure=insecure)[1]
        return result
    try:
        result['answer'] = talosctl.run_both(args, nodes=[node], insecure=insecure)[1]
    except TalosError:
        if not insecure or not runs(talosctl, node, desired):
            raise
        # A try before this one went through (the node rebooted into the config, the answer was lost), or
        # someone else applied the same config meanwhile: the node has what was asked for.
        result['answer'] = 'The node already runs this config\n'
    return result


def runs(talosctl, node, desired):
    """Whether the node answers over mTLS with exactly this config."""
    try:
        return comparable(talosctl.running_config(node)) == comparable(desired)
    except TalosError:
        return False


def apply_many(module, talosctl):
    configs = module.params['configs']
    if not configs:
        raise TalosError('configs names no node')

    # Every node's state in one call when they all answer over mTLS (a re-run), else one call per node.
    states = talosctl.machine_states(sorted(configs)) if module.params['insecure'] is None else {}

    def one(node):
        try:
            return node, apply_one(module, talosctl, node, configs[node], '{0}: '.format(node), states.get(node)), None
        except TalosError as exc:
            return node, None, str(exc)

    with ThreadPoolExecutor(max_workers=min(APPLIERS, len(configs))) as pool:
        outcomes = list(pool.map(one, sorted(configs)))
    done = dict((node, result) for node, result, error in outcomes if error is None)
    failed = dict((node, error) for node, result, error in outcomes if error is not None)
    answer = dict(changed=any(r['changed'] for r in done.values()), nodes={}, failed_nodes=failed)
    diffs = []
    for node, result in sorted(done.items()):
        result.pop('node')
        diff = result.pop('diff', None)
        if diff:
            diffs.append(dict(diff, before_header=node, after_header=node))
        answer['nodes'][node] = result
    if module._diff:
        answer['diff'] = diffs
    if failed:
        raise BatchFailed('{0} of {1} nodes failed: {2}'.format(
            len(failed), len(configs), '; '.join('{0}: {1}'.format(k, v) for k, v in sorted(failed.items()))), answer)
    return answer


class BatchFailed(Exception):
    def __init__(self, message, answer):
        super(BatchFailed, self).__init__(message)
        self.answer = answer


def apply(module, talosctl):
    if module.params['configs'] is not None:
        try:
            return apply_many(module, talosctl)
        except BatchFailed as exc:
            module.fail_json(msg=str(exc), **exc.answer)
    node = target_node(talosctl, 'apply the config to')
    return apply_one(module, talosctl, node, read_config(module.params))


def main():
    module = TALOS.module(dict(
        config=option('str', no_log=True), config_path=option('path'),
        mode=option('str', 'auto', choices=['auto', 'no-reboot', 'reboot', 'staged', 'try']),
        insecure=option('bool'), configs=option('dict', no_log=True),
    ), required_one_of=[('config', 'config_path', 'configs')],
        mutually_exclusive=[('config', 'config_path', 'configs')])
    with Talosctl(module) as talosctl:
        run_module(module, lambda: apply(module, talosctl))


if __name__ == '__main__':
    main()
