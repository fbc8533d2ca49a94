#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: ephemeral.castle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

DOCUMENTATION = r"""
module: vault_raft_snapshot
short_description: Save a raft snapshot of Vault or OpenBao on the controller, or restore one
version_added: 0.1.0
description:
  - O(state=present) downloads a snapshot of the server's integrated (raft) storage
    (C(GET /v1/sys/storage/raft/snapshot)) and puts it in place at O(dest) whole, mode 0600, beside
    C(<snapshot>.sha256) in C(sha256sum) format. With O(max_age), a snapshot at O(dest) (in a directory, the
    newest one) taken less than O(max_age) seconds ago and matching its C(.sha256) is kept and nothing is taken.
  - O(state=restored) sends the snapshot O(src) to the server (C(POST /v1/sys/storage/raft/snapshot)), which
    replaces all its data with the snapshot's. A restore always reports a change. When C(<src>.sha256) exists
    the file must match it, or nothing is sent.
  - The server restores the snapshot after it answered; with O(wait) the module then waits until the server is
    unsealed and active again.
  - The token needs C(sudo) on C(sys/storage/raft/snapshot) (and C(sys/storage/raft/snapshot-force) for
    O(force)). A server whose storage is not raft has no such paths (404), which the module names; one with raft
    as its HA backend only refuses them (C(raft storage is not in use)).
  - In check mode nothing is taken, written or sent.
author:
  - ephemeral.castle maintainers (@ephemeral-castle)
extends_documentation_fragment:
  - ephemeral.castle.vault
  - ephemeral.castle.vault.RETRIES
  - ephemeral.castle.vault.AUTH
  - ephemeral.castle.vault.ACTION_GROUP
  - ephemeral.castle.attributes
options:
  state:
    description: V(present) takes a snapshot into O(dest), V(restored) restores O(src).
    type: str
    choices: [present, restored]
    default: present
  dest:
    description:
      - The snapshot file to write, or an existing directory (or a path ending with C(/)) in which the
        snapshot is named C(<prefix>-<UTC time, like 20260101T120000Z>.snap). Required with O(state=present).
    type: path
  prefix:
    description: Start of the snapshot's name when O(dest) is a directory.
    type: str
    default: raft
  max_age:
    description: Seconds a snapshot already at O(dest) stays recent enough to keep. V(0) always takes one.
    type: int
    default: 0
  src:
    description: The snapshot file to restore. Required with O(state=restored).
    type: path
  force:
    description:
      - Restore through C(sys/storage/raft/snapshot-force), which skips the check that the snapshot was taken
        by a server with the same unseal keys (a snapshot of the server a rebuild replaced). Afterwards the
        server holds the snapshot's data, its tokens and, once sealed again, needs the snapshot's unseal keys.
    type: bool
    default: false
  wait:
    description: After a restore, wait until the server is unsealed and active again.
    type: bool
    default: true
  wait_timeout:
    description: Seconds the server may take to be active again after a restore.
    type: int
    default: 60
"""

EXAMPLES = r"""
- name: Save OpenBao's data, at most once an hour
  ephemeral.castle.vault_raft_snapshot:
    vault_addr: https://bao.example.org:8200
    vault_token: "{{ bao_root_token }}"
    dest: /srv/backups/openbao/
    max_age: 3600
  register: bao_snapshot

- name: Put the data back into the rebuilt OpenBao
  ephemeral.castle.vault_raft_snapshot:
    vault_addr: https://bao.example.org:8200
    vault_token: "{{ bao_root_token }}"
    state: restored
    src: "{{ bao_snapshot.path }}"
    force: true
"""

RETURN = r"""
path:
  description: The snapshot file written, kept or restored (in check mode, the one that would be written).
  returned: always
  type: str
  sample: /srv/backups/openbao/raft-20260101T120000Z.snap
size:
  description: Its size in bytes.
  returned: when a snapshot was taken, kept or restored
  type: int
  sample: 53248
sha256:
  description: Its sha256.
  returned: when a snapshot was taken, kept or restored
  type: str
  sample: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
taken_at:
  description: When the snapshot was taken (UTC; for a kept or restored one, when its file was written).
  returned: always
  type: str
  sample: '2026-01-01T12:00:00Z'
"""

import os

from ansible_collections.ephemeral.castle.plugins.module_utils import snapshot_files as files
from ansible_collections.ephemeral.castle.plugins.module_utils import vault
from ansible_collections.ephemeral.castle.plugins.module_utils._files import FileWriteError
from ansible_collections.ephemeral.castle.plugins.module_utils.base import option, run_module, wait_options

SUFFIX = '.snap'


def take(module, client):
    def download(tmp):
        with open(tmp, 'wb') as out:
            client.raft_snapshot(out)
        return {}
    return files.take(module, SUFFIX, download)


def restore(module, client):
    params = module.params
    src = params['src']
    files.readable(src, 'src')
    found = files.describe(src)
    recorded = files.recorded_sha256(src)
    if os.path.exists(src + '.sha256') and recorded != found['sha256']:
        raise FileWriteError('src: {0} does not match {0}.sha256 (sha256 {1}); nothing was restored'.format(
            src, found['sha256']))
    result = dict(changed=True, **found)
    if module._diff:
        result['diff'] = dict(before=dict(restored_from=None), after=dict(restored_from=src))
    if module.check_mode:
        return result
    client.restore_raft_snapshot(src, force=params['force'])
    if params['wait']:
        client.wait_active(params['wait_timeout'], 'the restore')
    return result


def main():
    spec = dict(state=option('str', 'present', choices=['present', 'restored']), dest=option('path'),
                prefix=option('str', 'raft'), max_age=option('int', 0), src=option('path'),
                force=option('bool', False), **wait_options(60))
    module = vault.layer().module(spec, required_if=[('state', 'present', ('dest',)), ('state', 'restored', ('src',))])
    action = take if module.params['state'] == 'present' else restore
    run_module(module, lambda: action(module, vault.Vault(module.params)))


if __name__ == '__main__':
    main()
