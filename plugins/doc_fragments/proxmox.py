# -*- coding: utf-8 -*-
# Copyright: ephemeral.castle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Connection options of every Proxmox VE module, matching connection_argument_spec()."""


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  api_host:
    description:
      - Address or name of a Proxmox VE node's API.
      - Falls back to the E(PROXMOX_HOST) environment variable.
    type: str
    required: true
  api_port:
    description:
      - Port of the API. Falls back to E(PROXMOX_PORT).
    type: int
    default: 8006
  api_user:
    description:
      - User to log in as, with its realm, for example C(root@pam).
      - Not needed when O(api_token_id) is the full token ID C(user@realm!name).
      - Falls back to E(PROXMOX_USER).
    type: str
  api_password:
    description:
      - Password of O(api_user). Use an API token instead where you can.
      - Falls back to E(PROXMOX_PASSWORD).
    type: str
  api_token_id:
    description:
      - API token, either its full ID C(user@realm!name) or its name beside O(api_user).
      - Falls back to E(PROXMOX_TOKEN_ID).
    type: str
  api_token_secret:
    description:
      - Secret of the API token. Falls back to E(PROXMOX_TOKEN_SECRET).
    type: str
  validate_certs:
    description:
      - Verify the API's TLS certificate. Keep it on; point O(ca_path) at a private CA instead.
      - Falls back to E(PROXMOX_VALIDATE_CERTS).
    type: bool
    default: true
  ca_path:
    description:
      - CA certificate file (PEM) that signed the API's certificate. Without it the system roots
        (or E(REQUESTS_CA_BUNDLE)) are used. Falls back to E(PROXMOX_CA).
    type: path
  api_timeout:
    description:
      - Seconds to wait for one API answer.
    type: int
    default: 30
  retries:
    description:
      - How many times to retry a request that failed on a connection error, a 5xx answer or a
        lock timeout, with jittered exponential backoff (up to 8 seconds between tries).
      - Requests that create something are not resent after the connection broke mid-request.
      - The older name O(api_retries) is an alias.
    type: int
    default: 4
    aliases: [api_retries]
requirements:
  - proxmoxer >= 2.0
  - requests
notes:
  - Every request goes to O(api_host); the cluster forwards it to the node that owns the guest.
"""

    ACTION_GROUP = r"""
options: {}
attributes:
  action_group:
    description: Set the connection options once with C(module_defaults) and C(group/ephemeral.castle.proxmox).
    support: full
    membership:
      - ephemeral.castle.proxmox
"""
