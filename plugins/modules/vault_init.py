#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: ephemeral.castle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

DOCUMENTATION = r"""
module: vault_init
short_description: Initialise a new Vault or OpenBao server once
version_added: 0.1.0
description:
  - Initialises a server that is not initialised yet (C(sys/init)) with Shamir unseal keys, and hands
    the unseal keys and the root token to the caller only as asked, written to O(dest) (mode 0600) and/or
    returned when O(return_keys=true).
  - An initialised server is left alone (no change, no keys returned, O(dest) untouched); the keys
    exist only once, at initialisation.
  - Needs no token; the server stays sealed afterwards (see M(ephemeral.castle.vault_unseal)).
author:
  - ephemeral.castle maintainers (@ephemeral-castle)
extends_documentation_fragment:
  - ephemeral.castle.vault
  - ephemeral.castle.vault.RETRIES
  - ephemeral.castle.vault.ACTION_GROUP
  - ephemeral.castle.attributes
options:
  secret_shares:
    description:
      - Number of unseal key shares to split the root key into.
    type: int
    default: 5
  secret_threshold:
    description:
      - Number of shares needed to unseal; between 1 and O(secret_shares).
    type: int
    default: 3
  dest:
    description:
      - File on the controller to write the keys to (JSON with C(unseal_keys_b64), C(unseal_keys_hex) and
        C(root_token)), mode 0600. Its directory must exist; it is checked before initialising.
      - M(ephemeral.castle.vault_unseal) reads it with O(ephemeral.castle.vault_unseal#module:keys_file).
    type: path
  return_keys:
    description:
      - Return the keys and the root token (RV(unseal_keys_hex), RV(unseal_keys_b64), RV(root_token)). The result is then
        marked C(no_log) (by the action plugin of the module) so Ansible does not print it; register it and keep it out of logs.
      - At least one of O(dest) and O(return_keys=true) is required, or the keys would be lost.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Initialise the new OpenBao server, keys kept on the controller only
  ephemeral.castle.vault_init:
    vault_addr: https://bao.example.org:8200
    secret_shares: 5
    secret_threshold: 3
    dest: /srv/castle/private/bao-init.json
"""

RETURN = r"""
initialized:
  description: Whether the server is initialised after the task (false only in check mode).
  returned: always
  type: bool
  sample: true
sealed:
  description: Whether the server is sealed after the task.
  returned: always
  type: bool
  sample: true
secret_shares:
  description: Number of key shares of the server (what this run would use, in check mode).
  returned: always
  type: int
  sample: 5
secret_threshold:
  description: Number of shares needed to unseal the server.
  returned: always
  type: int
  sample: 3
unseal_keys_hex:
  description: Unseal keys, hexadecimal.
  returned: when this run initialised the server and O(return_keys=true)
  type: list
  elements: str
unseal_keys_b64:
  description: Unseal keys, base64.
  returned: when this run initialised the server and O(return_keys=true)
  type: list
  elements: str
root_token:
  description: The initial root token.
  returned: when this run initialised the server and O(return_keys=true)
  type: str
"""

import json
import os

from ansible_collections.ephemeral.castle.plugins.module_utils import vault
from ansible_collections.ephemeral.castle.plugins.module_utils._files import write_private
from ansible_collections.ephemeral.castle.plugins.module_utils.base import run_module


def initialise(module):
    params = module.params
    shares, threshold = params['secret_shares'], params['secret_threshold']
    if shares < 1:
        raise vault.VaultError('secret_shares must be 1 or more, not {0}'.format(shares))
    if not 1 <= threshold <= shares:
        raise vault.VaultError('secret_threshold must be between 1 and secret_shares ({0}), not {1}'.format(shares, threshold))
    if not params['dest'] and not params['return_keys']:
        raise vault.VaultError('set dest and/or return_keys=true: the unseal keys exist only once, at initialisation')
    if params['dest']:
        directory = os.path.dirname(os.path.abspath(params['dest']))
        if not os.path.isdir(directory) or not os.access(directory, os.W_OK):
            raise vault.VaultError('dest {0}: directory {1} does not exist or is not writable'.format(params['dest'], directory))
    server = vault.Vault(params, login=False)
    status = server.seal_status()
    result = dict(changed=False, initialized=bool(status.get('initialized')), sealed=bool(status.get('sealed')),
                  secret_shares=status.get('n'), secret_threshold=status.get('t'))
    before = dict(initialized=result['initialized'])
    if result['initialized']:
        before.update(secret_shares=result['secret_shares'], secret_threshold=result['secret_threshold'])
    if not result['initialized']:
        result.update(changed=True, secret_shares=shares, secret_threshold=threshold, sealed=True)
        if not module.check_mode:
            init = server.call('initialising ' + server.addr, server.client.sys.initialize,
                               secret_shares=shares, secret_threshold=threshold)
            result['initialized'] = True
            if params['dest']:
                write_private(params['dest'], json.dumps(dict(
                    unseal_keys_b64=init['keys_base64'], unseal_keys_hex=init['keys'],
                    root_token=init['root_token']), indent=2) + '\n')
            if params['return_keys']:
                result.update(unseal_keys_hex=init['keys'], unseal_keys_b64=init['keys_base64'], root_token=init['root_token'])
    if module._diff:
        result['diff'] = dict(before=before, after=dict(initialized=True, secret_shares=result['secret_shares'],
                                                        secret_threshold=result['secret_threshold']))
    return result


def main():
    spec = dict(secret_shares=dict(type='int', default=5, no_log=False),
                secret_threshold=dict(type='int', default=3, no_log=False),
                dest=dict(type='path'), return_keys=dict(type='bool', default=False))
    module = vault.layer(auth=False).module(spec)
    run_module(module, lambda: initialise(module))


if __name__ == '__main__':
    main()
