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
    C(talosctl health) from the first configured control-plane node (etcd, apid, the nodes' boot, the
    Kubernetes nodes' readiness, the control plane and the cluster's DNS and proxy pods, in that order).
  - Talos gives each of its checks a cap of its own (5 minutes for most, 10 for the Kubernetes nodes'
    readiness, 1 for diagnostics) and stops at the first that does not pass within it. This module runs
    C(talosctl health) again after such a stop, until O(wait_timeout) seconds have passed since it started.
  - Talos takes the nodes as IP addresses only; a node named otherwise fails the module before anything runs.
  - Fails naming the check that did not pass and what it last said.
  - Never changes anything.
author:
  - ephemeral.castle maintainers (@ephemeral-castle)
extends_documentation_fragment:
  - ephemeral.castle.talos
  - ephemeral.castle.talos.ACTION_GROUP
  - ephemeral.castle.attributes.INFO_MODULE
options:
  control_plane_nodes:
    description: IP addresses of the control-plane nodes.
    type: list
    elements: str
    required: true
  worker_nodes:
    description: IP addresses of the worker nodes.
    type: list
    elements: str
    default: []
  wait_timeout:
    description:
      - Seconds the cluster may take to become healthy, over as many runs of C(talosctl health) as fit in.
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
  description: The progress talosctl reported (on stderr) in its last run, in order.
  returned: when the cluster is healthy
  type: list
  elements: str
  sample: ["waiting for etcd to be healthy: OK", "waiting for all k8s nodes to report ready: OK"]
runs:
  description: How many times C(talosctl health) ran.
  returned: when the cluster is healthy
  type: int
  sample: 1
"""

import ipaddress
import re

from ansible_collections.ephemeral.castle.plugins.module_utils._wait import Deadline
from ansible_collections.ephemeral.castle.plugins.module_utils.base import option, run_module
from ansible_collections.ephemeral.castle.plugins.module_utils.talos import TALOS, TalosError, Talosctl

CHECK = re.compile(r'^waiting for (?P<check>.+?): (?P<detail>.*)$')
# Seconds between two runs of talosctl health.
PAUSE = 2


def failing_check(text):
    """The last check talosctl was waiting on that did not end OK (or SKIP), and what it said last (a
    multi-line answer, such as a multierror's `\t* <node>: ...` lines, joined into one)."""
    found = None
    following = False
    for line in (text or '').splitlines():
        match = CHECK.match(line.strip())
        if not match:
            # Lines that go on the check's last answer; anything else (healthcheck error: ...) ends it.
            following = following and line.startswith(('\t', ' ')) and bool(line.strip())
            if following:
                found = (found[0], '{0} {1}'.format(found[1], line.strip()).strip())
            continue
        detail = match.group('detail').strip()
        following = False
        if detail in ('OK', 'SKIP'):
            found = None
        elif detail != '...' or not found or found[0] != match.group('check'):
            found = (match.group('check'), '' if detail == '...' else detail)
            following = detail != '...'
    return found


def not_ip(nodes):
    bad = []
    for node in nodes:
        try:
            ipaddress.ip_address(node)
        except ValueError:
            bad.append(node)
    return bad


def check(module, talosctl):
    params = module.params
    nodes = params['control_plane_nodes'] + params['worker_nodes']
    bad = not_ip(nodes)
    if bad:
        raise TalosError('talosctl health takes IP addresses only; not one: {0}'.format(', '.join(bad)))
    states = talosctl.machine_states(nodes)
    checked = [node for node in nodes if states[node][0] != 'maintenance']
    not_configured = [node for node in nodes if states[node][0] == 'maintenance']
    control_planes = [node for node in params['control_plane_nodes'] if node in checked]
    if not control_planes:
        raise TalosError('no control-plane node of {0} is configured yet; nothing to check'.format(
            ', '.join(params['control_plane_nodes'])))
    workers = [node for node in params['worker_nodes'] if node in checked]
    deadline = Deadline(params['wait_timeout'], talosctl._clock)
    runs = 0
    while True:
        left = params['wait_timeout'] if not runs else max(1, int(deadline.left))
        args = ['health', '--control-plane-nodes', ','.join(control_planes), '--wait-timeout', '{0}s'.format(left)]
        if workers:
            args += ['--worker-nodes', ','.join(workers)]
        runs += 1
        try:
            dummy, err = talosctl.run_both(args, nodes=[control_planes[0]], retry=False)
        except TalosError as exc:
            found = failing_check(exc.stderr)
            # A check that ran out of its own cap, or a node not answering: again, while time is left.
            if deadline.left > PAUSE and (found or 'code = Unavailable' in (exc.stderr or '')):
                talosctl._sleep(PAUSE)
                continue
            what = 'health check "{0}" did not pass within {1}s ({2} run{3} of talosctl health){4}'.format(
                found[0], params['wait_timeout'], runs, '' if runs == 1 else 's',
                ': ' + found[1] if found[1] else '') if found \
                else 'cluster is not healthy within {0}s: {1}'.format(params['wait_timeout'], exc)
            raise TalosError(what, rc=exc.rc, stdout=exc.stdout, stderr=exc.stderr, command=exc.command)
        # talosctl reports progress on stderr.
        lines = [line.strip() for line in err.splitlines() if CHECK.match(line.strip())]
        return dict(changed=False, checked=checked, not_configured=not_configured, checks=lines, runs=runs)


def main():
    module = TALOS.module(dict(
        control_plane_nodes=option('list', elements='str', required=True),
        worker_nodes=option('list', [], elements='str'),
        wait_timeout=option('int', 600),
    ))
    with Talosctl(module) as talosctl:
        run_module(module, lambda: check(module, talosctl))


if __name__ == '__main__':
    main()
