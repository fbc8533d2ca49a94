#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: ephemeral.castle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

DOCUMENTATION = r"""
module: talos_secrets
short_description: Generate a Talos cluster's secrets bundle once and keep it in Vault
version_added: 0.1.0
description:
  - Reads the cluster's secrets bundle (CAs, keys and tokens) from Vault KV version 2 at O(vault_path).
    When there is none, generates one with C(talosctl gen secrets) and writes it there.
  - A later run reads it back and changes nothing; O(rotate=true) generates a new bundle and writes it as
    a new version (every node then needs new configs).
  - Returns the bundle for the tasks that render machine configs; register it on a task with
    C(no_log=true). It is written to disk only at O(dest), with mode 0600.
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
  vault_path:
    description:
      - Path of the secret under O(vault_mount), for example C(castle/lab/talos). The bundle is kept
        under the key C(secrets.yaml).
    type: str
    required: true
  rotate:
    description:
      - Generate a new bundle even though one is kept.
    type: bool
    default: false
  talos_version:
    description:
      - Talos version to generate the bundle for (C(--talos-version)), for example C(v1.11).
    type: str
  dest:
    description:
      - Also write the bundle to this file on the controller, with mode 0600.
    type: path
notes:
  - In check mode a missing bundle is generated (locally, nothing is stored) so later tasks can render
    configs; RV(stored) is then false.
"""

EXAMPLES = r"""
- name: Secrets bundle of the lab cluster, kept in Vault
  ephemeral.castle.talos_secrets:
    vault_path: castle/lab/talos
  register: talos_secrets
  no_log: true

- name: Rotate it (every node needs new configs afterwards)
  ephemeral.castle.talos_secrets:
    vault_path: castle/lab/talos
    rotate: true
  no_log: true
"""

RETURN = r"""
bundle:
  description: The secrets bundle (YAML). Register it on a task with C(no_log=true).
  returned: always
  type: str
  sample: "cluster:\n  id: ...\n"
bundle_sha256:
  description: SHA-256 digest of the bundle, to tell bundles apart without showing them.
  returned: always
  type: str
  sample: 9f2b5c1e0d6a4e8f7c3b2a1d0e9f8c7b6a5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f
generated:
  description: Whether this run generated the bundle (none was kept, or O(rotate=true)).
  returned: always
  type: bool
  sample: false
stored:
  description: Whether the bundle returned is the one kept in Vault.
  returned: always
  type: bool
  sample: true
version:
  description: KV version of the secret holding the bundle.
  returned: when the bundle is stored
  type: int
  sample: 1
"""

import os

from ansible_collections.ephemeral.castle.plugins.module_utils._files import write_private
from ansible_collections.ephemeral.castle.plugins.module_utils.base import option, run_module
from ansible_collections.ephemeral.castle.plugins.module_utils.talos import TALOS, TalosError, Talosctl
from ansible_collections.ephemeral.castle.plugins.module_utils.talos_documents import digest
from ansible_collections.ephemeral.castle.plugins.module_utils.talos_output import parse_yaml_docs
from ansible_collections.ephemeral.castle.plugins.module_utils.vault import VaultError, VaultKV, connection_argument_spec

KEY = 'secrets.yaml'


def generate(talosctl, talos_version):
    path = os.path.join(talosctl.private_dir, 'secrets.yaml')
    args = ['gen', 'secrets', '--output-file', path]
    if talos_version:
        args += ['--talos-version', talos_version]
    talosctl.run(args, connect=False, cwd=talosctl.private_dir)
    try:
        with open(path) as handle:
            bundle = handle.read()
    except (IOError, OSError) as exc:
        raise TalosError('talosctl gen secrets wrote no bundle: {0}'.format(exc))
    parse_yaml_docs(bundle)
    return bundle


def keep(module, talosctl):
    params = module.params
    kv = VaultKV(params)
    where = kv.where(params['vault_path'])
    stored = kv.read(params['vault_path'])
    if stored is not None and not stored.get(KEY):
        raise TalosError('{0} exists but holds no {1} key; it is not a Talos secrets bundle'.format(where, KEY))
    bundle = (stored or {}).get(KEY)
    result = dict(changed=False, generated=False, stored=bundle is not None)
    before = dict(vault=where, bundle_sha256=digest(bundle) if bundle else None)
    if bundle is None or params['rotate']:
        bundle = generate(talosctl, params['talos_version'])
        result.update(changed=True, generated=True, stored=False)
        if not module.check_mode:
            result['version'] = kv.write(params['vault_path'], {KEY: bundle})
            result['stored'] = True
    if params['dest']:
        result['changed'] |= write_private(params['dest'], bundle, module.check_mode)
    result.update(bundle=bundle, bundle_sha256=digest(bundle))
    if module._diff:
        result['diff'] = dict(before=before, after=dict(vault=where, bundle_sha256=result['bundle_sha256']))
    return result


def main():
    spec = connection_argument_spec(kv=True)
    spec.update(vault_path=option('str', required=True), rotate=option('bool', False),
                talos_version=option('str'), dest=option('path'))
    module = TALOS.module(spec)
    with Talosctl(module) as talosctl:
        run_module(module, lambda: keep(module, talosctl), errors=(VaultError,))


if __name__ == '__main__':
    main()
