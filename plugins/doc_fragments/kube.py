# -*- coding: utf-8 -*-
# Copyright: ephemeral.castle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Connection options of every Kubernetes and Flux module, matching connection_argument_spec()."""


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  kubeconfig:
    description:
      - Path of the kubeconfig file to use.
      - Falls back to E(K8S_AUTH_KUBECONFIG), then E(KUBECONFIG), then C(~/.kube/config).
      - Ignored when O(host) is set.
    type: path
  context:
    description:
      - Context of the kubeconfig to use instead of its current context. Falls back to E(K8S_AUTH_CONTEXT).
    type: str
  host:
    description:
      - URL of the API server, for a connection without a kubeconfig. Falls back to E(K8S_AUTH_HOST).
    type: str
  api_key:
    description:
      - Bearer token for O(host). Falls back to E(K8S_AUTH_API_KEY).
    type: str
  ca_cert:
    description:
      - CA certificate file (PEM) that signed the API server's certificate, overriding the kubeconfig's.
      - Falls back to E(K8S_AUTH_SSL_CA_CERT).
    type: path
    aliases: [ssl_ca_cert]
  validate_certs:
    description:
      - Verify the API server's TLS certificate. Keep it on; set O(ca_cert) for a private CA instead.
      - Falls back to E(K8S_AUTH_VERIFY_SSL).
    type: bool
    default: true
    aliases: [verify_ssl]
  request_timeout:
    description:
      - Seconds to wait for one API answer.
    type: int
    default: 30
requirements:
  - kubernetes >= 30.1
notes:
  - API discovery is cached per API server in the controller's temporary directory and read again
    when a kind is not found in the cache, for example right after its CRD was installed.
"""

    ACTION_GROUP = r"""
options: {}
attributes:
  action_group:
    description: Set the connection options once with C(module_defaults) and C(group/ephemeral.castle.flux).
    support: full
    membership:
      - ephemeral.castle.flux
"""

    LONGHORN_ACTION_GROUP = r"""
options: {}
attributes:
  action_group:
    description: Set the connection options once with C(module_defaults) and C(group/ephemeral.castle.longhorn).
    support: full
    membership:
      - ephemeral.castle.longhorn
"""
