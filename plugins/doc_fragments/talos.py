# -*- coding: utf-8 -*-
# Copyright: ephemeral.castle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Options of every module that runs talosctl, matching connection_argument_spec() of module_utils/talos.py."""


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  binary_path:
    description:
      - Path of the C(talosctl) binary. Without it, C(talosctl) is looked up in E(PATH).
    type: path
  talosconfig:
    description:
      - Path of the Talos client configuration (talosconfig) used to reach configured nodes over mTLS.
      - Falls back to E(TALOSCONFIG), then to talosctl's own default C(~/.talos/config).
      - Mutually exclusive with O(talosconfig_content).
    type: path
  talosconfig_content:
    description:
      - The talosconfig itself, for example as returned by M(ephemeral.castle.talos_machine_config).
      - It is handed to talosctl as a file readable only by the user, in a private temporary
        directory removed when the module ends; it never appears on a command line.
    type: str
  context:
    description:
      - Context of the talosconfig to use instead of its current one.
    type: str
  endpoints:
    description:
      - Talos API endpoints to connect through (control-plane addresses or their VIP), overriding
        the talosconfig's.
      - Not used for nodes reached on the insecure maintenance API; those are reached directly.
    type: list
    elements: str
  nodes:
    description:
      - Nodes the command targets, by address.
      - Modules that act on one node take the first.
    type: list
    elements: str
  retries:
    description:
      - How many times to retry a talosctl call that failed because a node could not be reached
        (gRPC C(Unavailable), refused or broken connections), with jittered exponential backoff.
      - No other failure is retried.
    type: int
    default: 3
  retry_timeout:
    description:
      - Seconds after the first try past which no further retry starts.
    type: int
    default: 60
requirements:
  - talosctl (v1.11) on the controller
  - PyYAML
notes:
  - Secrets (secrets bundle, machine configs, talosconfig content) reach talosctl only through files
    created with mode 0600 in a private temporary directory, removed afterwards.
"""

    ACTION_GROUP = r"""
options: {}
attributes:
  action_group:
    description: Set the connection options once with C(module_defaults) and C(group/ephemeral.castle.talos).
    support: full
    membership:
      - ephemeral.castle.talos
"""
