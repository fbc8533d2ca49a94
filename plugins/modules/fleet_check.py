#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: ephemeral.castle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

DOCUMENTATION = r"""
module: fleet_check
short_description: Check the fleet's invariants, each violation with a stable code and the rows at fault
version_added: 0.1.0
description:
  - Validates the fleet (every error names the key path and what was expected), then checks its rules. Each
    violation has one of these codes, listed in the order they are checked.
  - C(workload-no-target) - a workload without a target host.
  - C(workload-no-owner) - a workload without an owner.
  - C(critical-tunnel-on-workstation) - a critical tunnel that starts or ends on a C(workstation) machine, or goes
    through one (its C(via)); production must run with the workstation switched off.
  - C(workload-targets-frozen) - a workload whose target host is a C(frozen) machine.
  - C(wave-before-dependent) - a workload that moves in the same wave as, or an earlier wave than, a workload
    that depends on it. A workload moves only after every workload that depends on it, so shared dependencies
    (identity, the secrets store) move last; for each C(depends_on) edge the dependency's wave must be greater.
  - C(dependency-cycle) - workloads that depend on each other in a cycle (reported once per cycle).
  - C(tunnel-port-clash) - two tunnels with units listening on the same port of the same machine (the same
    address, or either on every address).
  - C(mesh-unit-threshold) - a warning - a machine running more than five tunnel units; past that, a WireGuard
    mesh serves better than persistent ssh units.
  - Each violation has a C(severity). Every code is an C(error) except C(mesh-unit-threshold), and except a
    C(critical-tunnel-on-workstation) whose tunnel carries a workload (its C(workload) key) that has not reached
    its target host yet; once the workload's wave is done, that tunnel is an error too.
  - Never changes anything.
author:
  - ephemeral.castle maintainers (@ephemeral-castle)
extends_documentation_fragment:
  - ephemeral.castle.fleet
  - ephemeral.castle.fleet.ACTION_GROUP
  - ephemeral.castle.attributes.INFO_MODULE
options:
  fail_on_violation:
    description: Fail, listing every error, when there is any (warnings never fail). With V(false), return them and
      succeed.
    type: bool
    default: true
"""

EXAMPLES = r"""
- name: The fleet keeps its rules
  ephemeral.castle.fleet_check:
    fleet: "{{ fleet }}"

- name: Every violation of a fleet file, without failing
  ephemeral.castle.fleet_check:
    src: inventories/site/site.fleet.yml
    fail_on_violation: false
  register: fleet_rules
"""

RETURN = r"""
passed:
  description: Whether the fleet has no violation of severity C(error) (warnings pass).
  returned: always
  type: bool
  sample: false
violations:
  description: Every violation, each with its code, its severity (C(error) or C(warning)), a message and the rows at
    fault.
  returned: always
  type: list
  elements: dict
  sample:
    - code: critical-tunnel-on-workstation
      severity: error
      message: critical tunnel vault-sync starts on workstation laptop; production must run with the workstation off
      rows: [{"tunnel": "vault-sync", "from": "laptop", "to": "castle", "direction": "reverse", "actor": "laptop",
              "workload": null}]
counts:
  description: The number of violations by code (every code present, zero when clean).
  returned: always
  type: dict
  sample: {"workload-no-target": 0, "critical-tunnel-on-workstation": 2}
"""

from ansible_collections.ephemeral.castle.plugins.module_utils.base import run_module
from ansible_collections.ephemeral.castle.plugins.module_utils.fleet import LAYER, FleetRefusal, fleet_of
from ansible_collections.ephemeral.castle.plugins.module_utils.fleet_rules import CHECK_CODES, check


def run(params, warn):
    violations = check(fleet_of(params))
    counts = {code: 0 for code in CHECK_CODES}
    for violation in violations:
        counts[violation['code']] += 1
    errors = [v for v in violations if v['severity'] == 'error']
    result = {'changed': False, 'passed': not errors, 'violations': violations, 'counts': counts}
    if errors and params['fail_on_violation']:
        raise FleetRefusal('the fleet breaks {0} rule(s): {1}'.format(
            len(errors), '; '.join('[{0}] {1}'.format(v['code'], v['message']) for v in errors)), result)
    for violation in violations:
        if violation['severity'] == 'warning':
            warn('[{0}] {1}'.format(violation['code'], violation['message']))
    return result


def main():
    module = LAYER.module({'fail_on_violation': {'type': 'bool', 'default': True}})
    run_module(module, lambda: run(module.params, module.warn))


if __name__ == '__main__':
    main()
