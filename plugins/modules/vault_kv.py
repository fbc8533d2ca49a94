#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: ephemeral.castle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

DOCUMENTATION = r"""
module: vault_kv
short_description: Keep a secret of a KV version 2 mount of Vault or OpenBao
version_added: 0.1.0
description:
  - Reads the latest version of the secret and writes a new version only when the data differs, so a
    re-run makes no new version.
  - O(merge=false) (the default) replaces the data with O(data), removing the keys not given.
    O(merge=true) sets the keys given and keeps the others.
  - The diff and the return values name the keys added, changed and removed, never a value. Values show
    as C(<hidden>) (unchanged), C(<old value>) and C(<new value>).
  - The token needs C(read) on the secret's data path and, for O(cas), O(state=absent) and
    O(state=undeleted), on its metadata path (C(<mount>/metadata/<path>)). Without the metadata,
    RV(version) is the version written, or null when nothing is written.
  - O(state=absent) soft-deletes the latest version (it can be undeleted); with O(destroy=true) it
    destroys the versions in O(versions) for good, or, without O(versions), deletes every version and the
    metadata. O(state=undeleted) restores the versions in O(versions) (default the latest).
author:
  - ephemeral.castle maintainers (@ephemeral-castle)
extends_documentation_fragment:
  - ephemeral.castle.vault
  - ephemeral.castle.vault.RETRIES
  - ephemeral.castle.vault.AUTH
  - ephemeral.castle.vault.KV
  - ephemeral.castle.vault.ACTION_GROUP
  - ephemeral.castle.attributes
options:
  path:
    description:
      - Path of the secret under O(vault_mount), for example C(kaze-runtime).
    type: str
    required: true
  data:
    description:
      - The secret's keys and values; required with O(state=present). Values are compared as Vault returns
        them (JSON), so C(1) and C("1") differ.
    type: dict
  merge:
    description:
      - Keep the keys of the current version that O(data) does not set.
    type: bool
    default: false
  cas:
    description:
      - Check-and-set. Write only when the current version is this one (V(0) - only when the secret has
        never been written). Checked by Vault on write and by the task before it, also in check mode. A run
        that writes nothing (same data) does not check it.
    type: int
  state:
    description:
      - V(present) writes the data, V(absent) deletes (see O(destroy)), V(undeleted) restores soft-deleted
        versions.
    type: str
    choices: [present, absent, undeleted]
    default: present
  destroy:
    description:
      - With O(state=absent), destroy instead of soft-delete. No change when there is nothing to destroy.
    type: bool
    default: false
  versions:
    description:
      - Versions to destroy (O(state=absent), O(destroy=true)) or to undelete (O(state=undeleted)).
    type: list
    elements: int
"""

EXAMPLES = r"""
- name: Provider API keys of kaze-gateway, from ansible-vault encrypted vars
  ephemeral.castle.vault_kv:
    path: kaze-gateway
    data:
      openai_api_key: "{{ kaze_gateway_openai_api_key }}"
      anthropic_api_key: "{{ kaze_gateway_anthropic_api_key }}"

- name: Add one key, keep the others
  ephemeral.castle.vault_kv:
    path: kaze-runtime
    merge: true
    data:
      session_secret: "{{ kaze_runtime_session_secret }}"

- name: Soft-delete the latest version
  ephemeral.castle.vault_kv:
    path: kaze-legacy
    state: absent

- name: Forget the secret entirely (every version and the metadata)
  ephemeral.castle.vault_kv:
    path: kaze-legacy
    state: absent
    destroy: true
"""

RETURN = r"""
path:
  description: Mount and path of the secret.
  returned: always
  type: str
  sample: kv/kaze-runtime
version:
  description: Latest version of the secret after the task (null when it was never written; unchanged in check mode).
  returned: always
  type: int
  sample: 3
added:
  description: Keys the write adds (or would add).
  returned: always
  type: list
  elements: str
  sample: [session_secret]
updated:
  description: Keys whose value the write changes (or would change).
  returned: always
  type: list
  elements: str
  sample: []
removed:
  description: Keys the write removes (or would remove); with O(state=absent), the keys of the deleted version.
  returned: always
  type: list
  elements: str
  sample: []
versions:
  description: Versions destroyed or undeleted (or that would be).
  returned: always
  type: list
  elements: int
  sample: []
"""

from ansible_collections.ephemeral.castle.plugins.module_utils import vault
from ansible_collections.ephemeral.castle.plugins.module_utils.base import run_module


def live_versions(metadata):
    """{version: state} of the secret's versions: live, deleted or destroyed."""
    found = {}
    for number, info in ((metadata or {}).get('versions') or {}).items():
        found[int(number)] = 'destroyed' if info.get('destroyed') else ('deleted' if info.get('deletion_time') else 'live')
    return found


def keep(module):
    params = module.params
    path, state = params['path'].strip('/'), params['state']
    if not path:
        raise vault.VaultError('path is empty')
    if state == 'present' and params['data'] is None:
        raise vault.VaultError('data is required with state=present')
    if params['versions'] is not None and any(number < 1 for number in params['versions']):
        raise vault.VaultError('versions: {0} holds a version below 1'.format(params['versions']))
    kv = vault.VaultKV(params)
    where = kv.where(path)
    try:
        metadata, blind = kv.metadata(path), False
    except vault.VaultError as exc:
        # A token that may write the data but not read the metadata still gets read-before-write.
        if state != 'present' or params['cas'] is not None or 'permission denied' not in str(exc):
            raise
        metadata, blind = None, True
    versions = live_versions(metadata)
    latest = (metadata or {}).get('current_version') or None
    current = kv.read(path) if metadata or blind else None
    result = dict(changed=False, path=where, version=latest, added=[], updated=[], removed=[], versions=[])
    before = after = current

    if state == 'present':
        desired = {**(current or {}), **params['data']} if params['merge'] else dict(params['data'])
        if current is None or current != desired:
            if params['cas'] is not None and params['cas'] != (latest or 0):
                raise vault.VaultError('cas={0}: {1} is at version {2}; nothing written'.format(
                    params['cas'], where, latest or 0))
            changes = vault.kv_changes(current, desired)
            result.update(changed=True, added=changes['added'], updated=changes['changed'], removed=changes['removed'])
            after = desired
            if not module.check_mode:
                result['version'] = kv.write(path, desired, cas=params['cas'])
    elif state == 'absent':
        if params['destroy'] and params['versions']:
            targets = sorted(number for number in set(params['versions']) if versions.get(number) in ('live', 'deleted'))
            if latest in targets:
                after = None
            if targets:
                result.update(changed=True, versions=targets)
                if not module.check_mode:
                    kv.versions_call('destroy', path, targets)
        elif params['destroy']:
            if metadata is not None:
                result.update(changed=True, versions=sorted(versions), version=None if not module.check_mode else latest,
                              removed=sorted(current or {}))
                after = None
                if not module.check_mode:
                    kv.delete_all(path)
        elif current is not None:
            result.update(changed=True, removed=sorted(current))
            after = None
            if not module.check_mode:
                kv.delete_latest(path)
    else:
        targets = sorted(set(params['versions'] or ([latest] if latest else [])))
        unknown = [number for number in targets if number not in versions]
        if unknown:
            raise vault.VaultError('versions: {0} has no version {1}'.format(where, unknown))
        destroyed = [number for number in targets if versions[number] == 'destroyed']
        if destroyed:
            raise vault.VaultError('versions: version(s) {0} of {1} are destroyed and cannot be undeleted'.format(destroyed, where))
        targets = [number for number in targets if versions[number] == 'deleted']
        if targets:
            result.update(changed=True, versions=targets)
            if not module.check_mode:
                kv.versions_call('undelete', path, targets)
                if latest in targets:
                    after = kv.read(path)
    if module._diff:
        masked_before, masked_after = vault.kv_masked_diff(before, after)
        result['diff'] = dict(before=masked_before, after=masked_after, before_header=where, after_header=where)
    return result


def main():
    spec = dict(path=dict(type='str', required=True), data=dict(type='dict', no_log=True),
                merge=dict(type='bool', default=False), cas=dict(type='int'),
                state=dict(type='str', default='present', choices=['present', 'absent', 'undeleted']),
                destroy=dict(type='bool', default=False), versions=dict(type='list', elements='int'))
    module = vault.layer(kv=True).module(spec, required_if=[('state', 'present', ('data',))])
    run_module(module, lambda: keep(module))


if __name__ == '__main__':
    main()
