#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: ephemeral.castle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

DOCUMENTATION = r"""
module: vault_list_info
short_description: List the keys under paths of Vault or OpenBao
version_added: 0.1.0
description:
  - Sends a C(LIST) request for each of O(paths) (e.g. the roles of an SSH mount, C(ssh/roles), the roles of an
    AppRole mount, C(auth/approle/role), or the ACL policies, C(sys/policies/acl)) and returns the keys found.
  - A path with nothing under it, or of a mount that does not exist, lists no keys. Never changes anything.
  - Used to find what a previous run made and the inputs no longer name, so that it can be removed.
author:
  - ephemeral.castle maintainers (@ephemeral-castle)
extends_documentation_fragment:
  - ephemeral.castle.vault
  - ephemeral.castle.vault.RETRIES
  - ephemeral.castle.vault.AUTH
  - ephemeral.castle.vault.ACTION_GROUP
  - ephemeral.castle.attributes.INFO_MODULE
options:
  paths:
    description:
      - The paths to list, without C(/v1/) (leading and trailing slashes are ignored).
    type: list
    elements: str
    required: true
"""

EXAMPLES = r"""
- name: The SSH roles and the AppRoles Vault holds
  ephemeral.castle.vault_list_info:
    paths: [ssh-fleet/roles, auth/approle/role]
  register: listed

- name: Remove the SSH roles no actor needs any more
  ephemeral.castle.vault_ssh_role:
    mount: ssh-fleet
    name: "{{ item }}"
    state: absent
  loop: "{{ listed.found['ssh-fleet/roles'] | reject('in', actors) }}"
"""

RETURN = r"""
found:
  description: Each path of O(paths), as given, with the keys listed under it, sorted (a key ending in C(/) has
    keys under it in turn).
  returned: always
  type: dict
  sample: {"ssh-fleet/roles": ["archive", "gateway"], "auth/approle/role": ["castle-tunnel-railiance00"]}
"""

from ansible_collections.ephemeral.castle.plugins.module_utils import vault
from ansible_collections.ephemeral.castle.plugins.module_utils.base import run_module


def listed(module):
    paths = module.params['paths']
    if any(not path.strip('/') for path in paths):
        raise vault.VaultError('paths: an empty path cannot be listed')
    server = vault.Vault(module.params)
    return dict(changed=False, found={path: sorted(server.api_list(path.strip('/'))) for path in paths})


def main():
    module = vault.layer().module(dict(paths=dict(type='list', elements='str', required=True)))
    run_module(module, lambda: listed(module))


if __name__ == '__main__':
    main()
