#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: ephemeral.castle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

DOCUMENTATION = r"""
module: talos_bootstrap
short_description: Bootstrap etcd on a Talos cluster's first control-plane node, once
version_added: 0.1.0
description:
  - Runs C(talosctl bootstrap) on the first of O(nodes), a configured control-plane node, and on it alone
    (talosctl refuses a bootstrap of more than one node).
  - Give every control-plane node of the cluster in O(nodes). Each is asked for the etcd members first, and
    nothing is done when any of them lists members, or when the node answers that etcd is already
    bootstrapped, so it is safe to run on every play. A rebuilt first node (phoenix) that has not yet joined
    the running etcd is thus never bootstrapped into a second etcd cluster beside it.
  - With O(recover_from), etcd is bootstrapped from a snapshot (C(talosctl bootstrap --recover-from)), as
    M(ephemeral.castle.talos_etcd_snapshot) takes it, and the cluster comes back with the objects it held then.
    The same guards hold, so a cluster whose etcd runs is never overwritten by the snapshot.
author:
  - ephemeral.castle maintainers (@ephemeral-castle)
extends_documentation_fragment:
  - ephemeral.castle.talos
  - ephemeral.castle.talos.ACTION_GROUP
  - ephemeral.castle.attributes
options:
  recover_from:
    description:
      - A snapshot of etcd on the controller to bootstrap from (C(--recover-from)). It must be a file that can
        be read; the module fails naming this option otherwise, before talosctl runs.
    type: path
  recover_skip_hash_check:
    description:
      - Skip the check of the snapshot's sha256 trailer (C(--recover-skip-hash-check)), for a copy of etcd's
        data directory (C(member/snap/db)) rather than a snapshot C(talosctl etcd snapshot) took.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Bootstrap etcd on the first control-plane node
  ephemeral.castle.talos_bootstrap:
    talosconfig: ~/.talos/lab
    endpoints: [10.0.40.11, 10.0.40.12, 10.0.40.13]
    nodes: [10.0.40.11, 10.0.40.12, 10.0.40.13]

- name: Bring a rebuilt cluster's etcd back from its last snapshot
  ephemeral.castle.talos_bootstrap:
    talosconfig: ~/.talos/lab
    endpoints: [10.0.40.11, 10.0.40.12, 10.0.40.13]
    nodes: [10.0.40.11, 10.0.40.12, 10.0.40.13]
    recover_from: "{{ etcd_snapshot.path }}"
"""

RETURN = r"""
node:
  description: The node asked to bootstrap.
  returned: always
  type: str
  sample: 10.0.40.11
members:
  description: etcd members found before bootstrapping, as the first node of O(nodes) that answered lists them
    (none means it was bootstrapped here).
  returned: always
  type: list
  elements: dict
  sample: [{"NODE": "10.0.40.11", "ID": "3a2f7c9d1e0b4a56", "HOSTNAME": "cp-1"}]
recovered_from:
  description: The snapshot etcd was bootstrapped from (in check mode, would be); null without O(recover_from)
    or when etcd was bootstrapped already.
  returned: always
  type: str
  sample: /srv/backups/etcd/etcd-20260101T120000Z.db
"""

import re

from ansible_collections.ephemeral.castle.plugins.module_utils import snapshot_files
from ansible_collections.ephemeral.castle.plugins.module_utils.base import option, run_module
from ansible_collections.ephemeral.castle.plugins.module_utils.talos import TALOS, TalosError, Talosctl, target_node

ALREADY = re.compile(r'AlreadyExists|already bootstrapped|data directory is not empty', re.IGNORECASE)


def bootstrap(module, talosctl):
    node = target_node(talosctl, 'bootstrap')
    recover_from = module.params['recover_from']
    if recover_from:
        snapshot_files.readable(recover_from, 'recover_from')
    members = []
    for asked in talosctl.nodes:
        try:
            members = talosctl.etcd_members(asked, retry=False)
        except TalosError:
            # A node whose etcd does not run (before the bootstrap, or before it joined) cannot answer.
            continue
        if members:
            break
    result = dict(changed=not members, node=node, members=members,
                  recovered_from=None if members else recover_from)
    if module._diff:
        result['diff'] = dict(before=dict(etcd_members=len(members)), after=dict(etcd_members=len(members) or 1))
    if members or module.check_mode:
        return result
    args = ['bootstrap']
    if recover_from:
        args.append('--recover-from={0}'.format(recover_from))
        if module.params['recover_skip_hash_check']:
            args.append('--recover-skip-hash-check')
    try:
        talosctl.run(args, nodes=[node])  # one node per call, whatever the talosconfig's context lists
    except TalosError as exc:
        if not ALREADY.search('{0} {1}'.format(exc.stderr or '', exc)):
            raise
        result.update(changed=False, recovered_from=None)
        result.pop('diff', None)
    return result


def main():
    module = TALOS.module(dict(recover_from=option('path'), recover_skip_hash_check=option('bool', False)))
    with Talosctl(module) as talosctl:
        run_module(module, lambda: bootstrap(module, talosctl))


if __name__ == '__main__':
    main()
