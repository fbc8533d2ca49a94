# -*- coding: utf-8 -*-
# Copyright: ephemeral.castle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Options of every module that keeps something in Vault KV v2, matching connection_argument_spec() of
module_utils/vault.py."""


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  vault_addr:
    description:
      - URL of the Vault (or OpenBao) server. Falls back to E(VAULT_ADDR).
    type: str
  vault_token:
    description:
      - Token to authenticate with. Falls back to E(VAULT_TOKEN).
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
  vault_mount:
    description:
      - Mount point of the KV version 2 secrets engine.
    type: str
    default: kv
  vault_timeout:
    description:
      - Seconds to wait for one answer from Vault.
    type: int
    default: 30
requirements:
  - hvac >= 1.0
"""
