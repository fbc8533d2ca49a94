#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: ephemeral.castle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

DOCUMENTATION = r"""
module: fleet_mesh_plan
short_description: What each fleet machine runs for the mesh of tunnels, and what each machine's sshd accepts
version_added: 0.1.0
description:
  - Every tunnel of the fleet that has both C(local_port) and C(remote_port) becomes a unit on its C(from) machine,
    C(castle-tunnel-<name>.service), running C(ssh -N) with C(-L local:remote) (C(forward)) or C(-R remote:local)
    (C(reverse)) as its C(actor)'s system user C(castle-<actor>), through the sshd of its C(via) machine (by
    default its C(to)).
  - For each machine that ends a tunnel, the principals its sshd accepts, one line each in the
    C(AuthorizedPrincipalsFile) format, each allowed only the forwarding its tunnels need (C(restrict),
    C(port-forwarding), C(permitopen) or C(permitlisten)).
  - Every machine that is not C(planned) or C(wiped) has an entry, so a machine whose tunnels left the fleet file
    is still visited and its units removed.
  - Never changes anything. The C(fleet_tunnels) role runs what this plans.
author:
  - ephemeral.castle maintainers (@ephemeral-castle)
extends_documentation_fragment:
  - ephemeral.castle.fleet
  - ephemeral.castle.fleet.ACTION_GROUP
  - ephemeral.castle.attributes.INFO_MODULE
"""

EXAMPLES = r"""
- name: Plan the fleet's tunnels
  ephemeral.castle.fleet_mesh_plan:
    src: "{{ fleet_file }}"
  register: mesh
"""

RETURN = r"""
machines:
  description: Per machine, its tunnel units (as C(tunnels)), their C(actors), and C(principals), the lines of the
    principals file its sshd reads for the tunnels' login user.
  returned: always
  type: dict
  sample:
    railiance02:
      address: 10.0.10.12
      role: production
      tunnels: []
      actors: []
      principals: ['restrict,port-forwarding,permitopen="127.0.0.1:8080" gateway']
tunnels:
  description: Every tunnel that has a unit, by name, each with its unit name, source, the machine whose sshd it
    reaches (C(via), C(ssh_host), C(ssh_port)), its actor and system user, the ssh forwarding arguments, where it
    listens and where its traffic goes.
  returned: always
  type: list
  elements: dict
  sample:
    - name: gateway-runtime
      unit: castle-tunnel-gateway-runtime.service
      from: railiance01
      to: railiance02
      via: railiance02
      ssh_host: 10.0.10.12
      ssh_port: 22
      direction: forward
      actor: gateway
      user: castle-gateway
      forward: ["-L", "127.0.0.1:18080:127.0.0.1:8080"]
      permit: permitopen="127.0.0.1:8080"
      listen: {"machine": "railiance01", "address": "127.0.0.1", "port": 18080}
      target: {"machine": "railiance02", "address": "127.0.0.1", "port": 8080}
      critical: true
      workload: blog
      check_path: /
      check_expect: null
unmanaged:
  description: The tunnels without a unit (without both ports), by name; the fleet file only records them.
  returned: always
  type: list
  elements: str
  sample: [operator-vpn]
sources:
  description: The machines that run tunnel units.
  returned: always
  type: list
  elements: str
  sample: [railiance01]
targets:
  description: The machines whose sshd ends tunnels.
  returned: always
  type: list
  elements: str
  sample: [railiance02]
"""

from ansible_collections.ephemeral.castle.plugins.module_utils.base import run_module
from ansible_collections.ephemeral.castle.plugins.module_utils.fleet import LAYER, fleet_of
from ansible_collections.ephemeral.castle.plugins.module_utils.fleet_mesh import plan


def main():
    module = LAYER.module({})
    run_module(module, lambda: dict(plan(fleet_of(module.params)), changed=False))


if __name__ == '__main__':
    main()
