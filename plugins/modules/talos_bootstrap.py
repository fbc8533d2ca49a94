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
author:
  - ephemeral.castle maintainers (@ephemeral-castle)
extends_documentation_fragment:
  - ephemeral.castle.talos
  - ephemeral.castle.talos.ACTION_GROUP
  - ephemeral.castle.attributes
options: {}
"""

EXAMPLES = r"""
- name: Bootstrap etcd on the first control-plane node
  ephemeral.castle.talos_bootstrap:
    talosconfig: ~/.talos/lab
    endpoints: [10.0.40.11, 10.0.40.12, 10.0.40.13]
    nodes: [10.0.40.11, 10.0.40.12, 10.0.40.13]
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
"""

import re

from ansible_collections.ephemeral.castle.plugins.module_utils.base import run_module
from ansible_collections.ephemeral.castle.plugins.module_utils.talos import TALOS, TalosError, Talosctl, target_node

ALREADY = re.compile(r'AlreadyExists|already bootstrapped|data directory is not empty', re.IGNORECASE)


def bootstrap(module, talosctl):
    node = target_node(talosctl, 'bootstrap')
    members = []
    for asked in talosctl.nodes:
        try:
            members = talosctl.etcd_members(asked, retry=False)
        except TalosError:
            # A node whose etcd does not run (before the bootstrap, or before it joined) cannot answer.
            continue
        if members:
            break
    result = dict(changed=not members, node=node, members=members)
    if module._diff:
        result['diff'] = dict(before=dict(etcd_members=len(members)), after=dict(etcd_members=len(members) or 1))
    if members or module.check_mode:
        return result
    try:
        talosctl.run(['bootstrap'], nodes=[node])  # one node per call, whatever the talosconfig's context lists
    except TalosError as exc:
        if not ALREADY.search('{0} {1}'.format(exc.stderr or '', exc)):
            raise
        result['changed'] = False
        result.pop('diff', None)
    return result


def main():
    module = TALOS.module({})
    with Talosctl(module) as talosctl:
        run_module(module, lambda: bootstrap(module, talosctl))


if __name__ == '__main__':
    main()
