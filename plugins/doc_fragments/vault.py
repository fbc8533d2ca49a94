# -*- coding: utf-8 -*-
# Copyright: ephemeral.castle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Options of the modules that talk to Vault, matching module_utils/vault.py: DOCUMENTATION is
server_argument_spec(), AUTH is auth_argument_spec(), KV is the KV v2 mount (kv=True), RETRIES is the retries of
a Vault module (layer()), VAULT_RETRIES the retries of Vault calls in a module of another layer
(connection_argument_spec())."""


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  vault_addr:
    description:
      - URL of the Vault (or OpenBao) server. Falls back to E(VAULT_ADDR).
    type: str
  vault_ca_cert:
    description:
      - CA certificate file (PEM) that signed Vault's certificate. Falls back to E(VAULT_CACERT).
    type: path
  validate_certs:
    description:
      - Verify Vault's TLS certificate. Keep it on; set O(vault_ca_cert) for a private CA instead.
    type: bool
    default: true
  vault_timeout:
    description:
      - Seconds to wait for one answer from Vault.
    type: int
    default: 30
requirements:
  - hvac >= 1.0
"""

    RETRIES = r"""
options:
  retries:
    description:
      - How many times a call is retried after a connection error or a 5xx answer, with a short jittered
        backoff (at most 2 s between attempts). 4xx answers are never retried.
      - A sealed or uninitialised server is never retried; the module fails saying so.
    type: int
    default: 3
    aliases: [vault_retries]
"""

    VAULT_RETRIES = r"""
options:
  vault_retries:
    description:
      - How many times a call to Vault is retried after a connection error or a 5xx answer, with a short
        jittered backoff (at most 2 s between attempts). 4xx answers are never retried.
      - A sealed or uninitialised server is never retried; the module fails saying so.
    type: int
    default: 3
"""

    AUTH = r"""
options:
  vault_auth_method:
    description:
      - How to log in. V(token) uses O(vault_token); V(approle) logs in with O(vault_role_id) and
        O(vault_secret_id); V(kubernetes) logs in as O(vault_kubernetes_role) with a ServiceAccount token.
    type: str
    choices: [token, approle, kubernetes]
    default: token
  vault_auth_mount:
    description:
      - Path the auth method is mounted at, without C(auth/). Defaults to the method's name
        (C(approle), C(kubernetes)).
    type: str
  vault_token:
    description:
      - Token to authenticate with (O(vault_auth_method=token)). Falls back to E(VAULT_TOKEN).
    type: str
  vault_role_id:
    description:
      - AppRole role ID (O(vault_auth_method=approle)).
    type: str
  vault_secret_id:
    description:
      - AppRole secret ID (O(vault_auth_method=approle)).
    type: str
  vault_kubernetes_role:
    description:
      - Role of the Kubernetes auth mount to log in as (O(vault_auth_method=kubernetes)).
    type: str
  vault_kubernetes_jwt:
    description:
      - ServiceAccount token to log in with (O(vault_auth_method=kubernetes)).
    type: str
  vault_kubernetes_jwt_file:
    description:
      - File holding the ServiceAccount token, when O(vault_kubernetes_jwt) is not set. Defaults to the
        token a pod is given, C(/var/run/secrets/kubernetes.io/serviceaccount/token).
    type: path
"""

    KV = r"""
options:
  vault_mount:
    description:
      - Mount point of the KV version 2 secrets engine.
    type: str
    default: kv
"""

    ACTION_GROUP = r"""
options: {}
attributes:
  action_group:
    description: Set the connection options once with C(module_defaults) and C(group/ephemeral.castle.vault).
    support: full
    membership:
      - ephemeral.castle.vault
"""
