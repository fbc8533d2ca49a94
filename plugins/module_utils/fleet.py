# -*- coding: utf-8 -*-
# Copyright: ephemeral.castle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The fleet model: a fleet file loaded and validated (the schema is fleet_schema's, the rules fleet_rules'),
lookups over a validated fleet, and what the fleet_* modules share. Pure data, no client; read by the fleet
inventory plugin and the fleet_* modules. PRIVATE to the collection."""

from ansible_collections.ephemeral.castle.plugins.module_utils.base import CastleError, Layer, option
from ansible_collections.ephemeral.castle.plugins.module_utils.fleet_schema import FleetError, validate

try:
    import yaml
    HAS_YAML = True
except ImportError:
    HAS_YAML = False


def load(text, source):
    """The validated fleet of a fleet file's text (YAML with the fleet under `fleet:`)."""
    if not HAS_YAML:
        raise FleetError(source, ['reading a fleet file needs PyYAML, which ansible-core itself requires'])
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise FleetError(source, ['not valid YAML: {0}'.format(exc)])
    if not isinstance(doc, dict) or 'fleet' not in doc:
        raise FleetError(source, ['expected a mapping with the fleet under the key `fleet:`'])
    return validate(doc['fleet'], source)


def load_file(path):
    try:
        with open(path, encoding='utf-8') as handle:
            text = handle.read()
    except OSError as exc:
        raise FleetError(path, ['cannot read the fleet file: {0}'.format(exc.strerror or exc)])
    return load(text, path)


# Lookups over a validated fleet.

def machines(fleet):
    return {m['name']: m for m in fleet['machines']}


def workloads(fleet):
    return {w['name']: w for w in fleet['workloads']}


def place_role(fleet, name):
    """The role of a place: a machine's own, a cluster's or its node's cluster role; None if unknown."""
    found = machines(fleet).get(name)
    if found:
        return found['role']
    for cluster in fleet['clusters']:
        if name == cluster['name'] or name in [n['name'] for n in cluster['nodes']]:
            return cluster['role']
    return None


def place_state(fleet, name):
    """A machine's state; clusters and their nodes count as active."""
    found = machines(fleet).get(name)
    return found['state'] if found else 'active'


def place_kind(fleet, name):
    """'cluster', 'node' or 'machine' for a name of the fleet; None when the fleet has no such place."""
    for cluster in fleet['clusters']:
        if name == cluster['name']:
            return 'cluster'
        if name in [n['name'] for n in cluster['nodes']]:
            return 'node'
    if name in [m['name'] for m in fleet['machines']]:
        return 'machine'
    return None


def wiped_with(fleet, name):
    """The fleet names a wipe of `name` destroys: a cluster's nodes, else the name itself."""
    for cluster in fleet['clusters']:
        if name == cluster['name']:
            return sorted(n['name'] for n in cluster['nodes'])
    return [name]


def dependents(fleet):
    """{workload: [workloads that depend on it]}."""
    found = {w['name']: [] for w in fleet['workloads']}
    for w in fleet['workloads']:
        for dep in w['depends_on']:
            found[dep].append(w['name'])
    return found


# What the fleet_* modules share: the fleet, given as `fleet` or `src`.

LAYER = Layer({'fleet': option('dict'), 'src': option('path')}, mutually_exclusive=[('fleet', 'src')],
              required_one_of=[('fleet', 'src')])


class FleetRefusal(CastleError):
    """A fleet module fails (the fleet breaks a rule, a gate refuses, a token cannot be issued) after it has
    decided; details() is its whole result, so the failure still returns every violation or reason."""

    def __init__(self, message, result):
        super().__init__(message)
        self.result = result

    def details(self):
        return dict(self.result)


def fleet_of(params):
    """The validated fleet of a module's `fleet` or `src` option; raises FleetError naming every error."""
    if params['src']:
        return load_file(params['src'])
    return validate(params['fleet'], 'the fleet option')
