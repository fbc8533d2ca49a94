#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: ephemeral.castle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

DOCUMENTATION = r"""
module: talos_health
short_description: Wait until a Talos cluster is healthy
version_added: 0.1.0
description:
  - Asks the nodes of O(control_plane_nodes) and O(worker_nodes) whether they are configured (all in one
    C(talosctl get machinestatus), else each node on its own, all at once). Nodes still
    waiting in maintenance mode are left out (returned in RV(not_configured)); the rest are checked with
    C(talosctl health) from the first configured control-plane node, which waits up to O(wait_timeout)
    seconds for etcd, the control plane, the nodes' readiness and the cluster's pods.
  - Fails naming the check that did not pass.
  - Never changes anything.
author:
  - ephemeral.castle maintainers (@ephemeral-castle)
extends_documentation_fragment:
  - ephemeral.castle.talos
  - ephemeral.castle.talos.ACTION_GROUP
  - ephemeral.castle.attributes.INFO_MODULE
options:
  control_plane_nodes:
    description: Addresses of the control-plane nodes.
    type: list
    elements: str
    required: true
  worker_nodes:
    description: Addresses of the worker nodes.
    type: list
    elements: str
    default: []
  wait_timeout:
    description: Seconds the cluster may take to become healthy.
    type: int
    default: 600
"""

EXAMPLES = r"""
- name: Wait up to ten minutes for the cluster
  ephemeral.castle.talos_health:
    talosconfig: ~/.talos/lab
    endpoints: [10.0.40.10]
    control_plane_nodes: [10.0.40.11, 10.0.40.12, 10.0.40.13]
    worker_nodes: [10.0.40.21]
    wait_timeout: 600
"""

RETURN = r"""
checked:
  description: Nodes the health check covered.
  returned: always
  type: list
  elements: str
  sample: [10.0.40.11, 10.0.40.21]
not_configured:
  description: Nodes left out because they are not configured yet (maintenance mode).
  returned: always
  type: list
  elements: str
  sample: [10.0.40.22]
checks:
  description: The checks talosctl reported passing, in order.
  returned: when the cluster is healthy
  type: list
  elements: str
  sample: ["waiting for etcd to be healthy: OK", "waiting for all k8s nodes to report ready: OK"]
"""

import re

from ansible_collections.ephemeral.castle.plugins.module_utils.talos import (
    TalosError, run_module, talos_module)

CHECK = re.compile(r'waiting for (?P<check>[^:]+)(?::\s*(?P<detail>.*))?$')


def failing_check(text):
    """The last check talosctl was waiting on, and what it said about it."""
    found = None
    for line in (text or '').splitlines():
        match = CHECK.search(line.strip())
        if match and (match.group('detail') or '').strip() != 'OK':
            found = (match.group('check').strip(), (match.group('detail') or '').strip())
    return found


def check(module, talosctl):
    params = module.params
    nodes = params['control_plane_nodes'] + params['worker_nodes']
    states = talosctl.machine_states(nodes)
    checked = [node for node in nodes if states[node][0] != 'maintenance']
    not_configured = [node for node in nodes if states[node][0] == 'maintenance']
    control_planes = [node for node in params['control_plane_nodes'] if node in checked]
    if not control_planes:
        raise TalosError('no control-plane node of {0} is configured yet; nothing to check'.format(
            ', '.join(params['control_plane_nodes'])))
    workers = [node for node in params['worker_nodes'] if node in checked]
    args = ['health', '--control-plane-nodes', ','.join(control_planes), '--wait-timeout',
            '{0}s'.format(params['wait_timeout'])]
    if workers:
        args += ['--worker-nodes', ','.join(workers)]
    try:
        out = talosctl.run(args, nodes=[control_planes[0]], retry=False)
    except TalosError as exc:
        found = failing_check('{0}\n{1}'.format(exc.stdout or '', exc.stderr or ''))
        what = 'health check "{0}" did not pass within {1}s{2}'.format(
            found[0], params['wait_timeout'], ': ' + found[1] if found[1] else '') if found \
            else 'cluster is not healthy within {0}s: {1}'.format(params['wait_timeout'], exc)
        raise TalosError(what, rc=exc.rc, stdout=exc.stdout, stderr=exc.stderr, command=exc.command)
    # talosctl reports progress on stderr.
    lines = [line.strip() for line in (out + '\n' + talosctl.last_stderr).splitlines() if CHECK.search(line.strip())]
    return dict(changed=False, checked=checked, not_configured=not_configured, checks=lines)


def main():
    module = talos_module(dict(
        control_plane_nodes=dict(type='list', elements='str', required=True),
        worker_nodes=dict(type='list', elements='str', default=[]),
        wait_timeout=dict(type='int', default=600),
    ))
    run_module(module, lambda talosctl: check(module, talosctl))


if __name__ == '__main__':
    main()
