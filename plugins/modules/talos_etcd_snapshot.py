#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: ephemeral.castle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

DOCUMENTATION = r"""
module: talos_etcd_snapshot
short_description: Save a snapshot of a Talos cluster's etcd on the controller
version_added: 0.1.0
description:
  - Runs C(talosctl etcd snapshot) against one control-plane node, the first of O(nodes) that answers
    (talosctl takes a snapshot of one node per call; the others are tried in turn when a node is down or
    its etcd does not run), and puts the file in place at O(dest) whole, mode 0600.
  - Beside the snapshot it writes C(<snapshot>.sha256) in C(sha256sum) format, so C(sha256sum -c) checks it.
    etcd's snapshot also carries its own sha256 trailer, which C(talosctl bootstrap --recover-from) verifies.
  - With O(max_age), a snapshot at O(dest) (in a directory, the newest one) taken less than O(max_age)
    seconds ago and matching its C(.sha256) is kept and nothing is taken.
  - In check mode nothing is taken or written.
author:
  - ephemeral.castle maintainers (@ephemeral-castle)
extends_documentation_fragment:
  - ephemeral.castle.talos
  - ephemeral.castle.talos.ACTION_GROUP
  - ephemeral.castle.attributes
options:
  dest:
    description:
      - The snapshot file to write, or an existing directory (or a path ending with C(/)) in which the
        snapshot is named C(<prefix>-<UTC time, like 20260101T120000Z>.db).
    type: path
    required: true
  prefix:
    description: Start of the snapshot's name when O(dest) is a directory.
    type: str
    default: etcd
  max_age:
    description:
      - Seconds a snapshot already at O(dest) stays recent enough to keep. V(0) always takes one.
    type: int
    default: 0
"""

EXAMPLES = r"""
- name: Save etcd from the first control-plane node that answers, at most once an hour
  ephemeral.castle.talos_etcd_snapshot:
    talosconfig: ~/.talos/lab
    endpoints: [10.0.40.11, 10.0.40.12, 10.0.40.13]
    nodes: [10.0.40.11, 10.0.40.12, 10.0.40.13]
    dest: /srv/backups/etcd/
    max_age: 3600
  register: etcd_snapshot
"""

RETURN = r"""
path:
  description: The snapshot file (in check mode, the one that would be written).
  returned: always
  type: str
  sample: /srv/backups/etcd/etcd-20260101T120000Z.db
size:
  description: Its size in bytes.
  returned: when a snapshot was taken or kept
  type: int
  sample: 2052128
sha256:
  description: Its sha256, as C(<path>.sha256) records it.
  returned: when a snapshot was taken or kept
  type: str
  sample: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
node:
  description: The node whose etcd was saved.
  returned: when a snapshot was taken
  type: str
  sample: 10.0.40.11
taken_at:
  description: When the snapshot was taken (UTC; for a kept one, when its file was written).
  returned: always
  type: str
  sample: '2026-01-01T12:00:00Z'
"""

from ansible_collections.ephemeral.castle.plugins.module_utils import snapshot_files as files
from ansible_collections.ephemeral.castle.plugins.module_utils.base import option, run_module
from ansible_collections.ephemeral.castle.plugins.module_utils.talos import TALOS, TalosError, Talosctl

SUFFIX = '.db'


def snapshot(module, talosctl):
    if not talosctl.nodes:
        raise TalosError('nodes must name the control-plane node(s) to take the etcd snapshot from')
    return files.take(module, SUFFIX, lambda tmp: dict(node=take(talosctl, tmp)))


def take(talosctl, tmp):
    """The node whose etcd saved its snapshot to tmp: the nodes are asked in turn until one does."""
    errors = []
    for node in talosctl.nodes:
        try:
            talosctl.run(['etcd', 'snapshot', tmp], nodes=[node], retry=len(talosctl.nodes) == 1)
            return node
        except TalosError as exc:
            if len(talosctl.nodes) == 1:
                raise
            errors.append('{0}: {1}'.format(node, exc))
    raise TalosError('no node could take the etcd snapshot: {0}'.format('; '.join(errors)))


def main():
    module = TALOS.module(dict(dest=option('path', required=True), prefix=option('str', 'etcd'),
                               max_age=option('int', 0)))
    with Talosctl(module) as talosctl:
        run_module(module, lambda: snapshot(module, talosctl))


if __name__ == '__main__':
    main()
