#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: ephemeral.castle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

DOCUMENTATION = r"""
module: talos_kubeconfig
short_description: Fetch a Talos cluster's admin kubeconfig and keep it in a file or in Vault
version_added: 0.1.0
description:
  - Fetches the admin kubeconfig from the first of O(nodes) with C(talosctl kubeconfig) and writes it
    to O(dest) (mode 0600) and/or keeps it in Vault KV version 2 at O(vault_path) (key C(kubeconfig)).
  - talosctl signs a new client certificate on every call, so a kept kubeconfig is replaced only when
    it points at another API server or CA, or has other contexts, or with O(force=true); a re-run
    otherwise changes nothing.
  - Returns the kubeconfig; register it on a task with C(no_log=true).
author:
  - ephemeral.castle maintainers (@ephemeral-castle)
extends_documentation_fragment:
  - ephemeral.castle.talos
  - ephemeral.castle.talos.ACTION_GROUP
  - ephemeral.castle.vault
  - ephemeral.castle.vault.VAULT_RETRIES
  - ephemeral.castle.vault.AUTH
  - ephemeral.castle.vault.KV
  - ephemeral.castle.attributes
options:
  dest:
    description: File to write the kubeconfig to, with mode 0600.
    type: path
  vault_path:
    description: Path under O(vault_mount) to keep the kubeconfig at, for example C(castle/lab/kubeconfig).
    type: str
  force:
    description: Replace the kept kubeconfig even when it is for the same cluster.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Admin kubeconfig of the lab cluster, in a file and in Vault
  ephemeral.castle.talos_kubeconfig:
    talosconfig: ~/.talos/lab
    nodes: [10.0.40.11]
    dest: ~/.kube/lab
    vault_path: castle/lab/kubeconfig
"""

RETURN = r"""
kubeconfig:
  description: The admin kubeconfig (YAML). It holds a client key.
  returned: always
  type: str
  sample: "apiVersion: v1\nkind: Config\nclusters: []\n"
servers:
  description: API server URLs the kubeconfig points at.
  returned: always
  type: list
  elements: str
  sample: [https://10.0.40.10:6443]
written:
  description: Where the kubeconfig was (or in check mode would be) written.
  returned: always
  type: list
  elements: str
  sample: [/home/ops/.kube/lab, vault:kv/castle/lab/kubeconfig]
"""


from ansible_collections.ephemeral.castle.plugins.module_utils._files import write_private
from ansible_collections.ephemeral.castle.plugins.module_utils.base import option, run_module
from ansible_collections.ephemeral.castle.plugins.module_utils.talos import TALOS, TalosError, Talosctl, target_node
from ansible_collections.ephemeral.castle.plugins.module_utils.talos_documents import kubeconfig_identity
from ansible_collections.ephemeral.castle.plugins.module_utils.vault import VaultError, VaultKV, connection_argument_spec


def identity_of(text):
    try:
        return kubeconfig_identity(text) if text else None
    except TalosError:
        return None


def fetch(module, talosctl):
    params = module.params
    node = target_node(talosctl, 'fetch the kubeconfig from')
    text = talosctl.run(['kubeconfig', '-', '--merge=false'], nodes=[node], sensitive=True)
    wanted = identity_of(text)
    if not wanted or not wanted['clusters']:
        raise TalosError('talosctl kubeconfig printed no kubeconfig')
    before, after, written = {}, {}, []
    if params['dest']:
        dest = params['dest']
        try:
            with open(dest) as handle:
                kept = handle.read()
        except (IOError, OSError):
            kept = None
        if params['force'] or identity_of(kept) != wanted:
            before[dest], after[dest] = identity_of(kept), wanted
            written.append(dest)
            write_private(dest, text, module.check_mode)
        elif write_private(dest, kept, module.check_mode):
            written.append(dest)  # the same kubeconfig, its mode made 0600
    if params['vault_path']:
        kv = VaultKV(params)
        where = 'vault:' + kv.where(params['vault_path'])
        kept = (kv.read(params['vault_path']) or {}).get('kubeconfig')
        if params['force'] or identity_of(kept) != wanted:
            before[where], after[where] = identity_of(kept), wanted
            written.append(where)
            if not module.check_mode:
                kv.write(params['vault_path'], {'kubeconfig': text})
    result = dict(changed=bool(written), kubeconfig=text, written=written,
                  servers=[cluster[1] for cluster in wanted['clusters']])
    if module._diff and written:
        result['diff'] = dict(before=before, after=after)
    return result


def main():
    spec = connection_argument_spec(kv=True)
    spec.update(dest=option('path'), vault_path=option('str'), force=option('bool', False))
    module = TALOS.module(spec)
    with Talosctl(module) as talosctl:
        run_module(module, lambda: fetch(module, talosctl), errors=(VaultError,))


if __name__ == '__main__':
    main()
