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


# A cluster's inputs for the playbooks (the cluster_inputs filter).

def pick_cluster(names, wanted, source):
    """The name of the cluster meant among `names` (the fleet's clusters, in order): `wanted`, or the only one
    when none is named. ValueError naming the fleet `source`, the cluster and the fleet's clusters otherwise."""
    listed = ', '.join(names) or 'none'
    if wanted:
        if wanted not in names:
            raise ValueError('fleet {0} has no cluster {1!r}; its clusters: {2}'.format(source, wanted, listed))
        return wanted
    if not names:
        raise ValueError('fleet {0} has no cluster (a fleet file read by the ephemeral.castle.fleet inventory '
                         'plugin, with clusters)'.format(source))
    if len(names) > 1:
        raise ValueError('fleet {0} has {1} clusters ({2}): name one (the playbooks take -e cluster=<name>)'.format(
            source, len(names), listed))
    return names[0]


def cluster_inputs(cluster, nodes, services=None):
    """What the playbooks take for one cluster of the fleet: its Proxmox VE API, its Talos cluster (`nodes`, the
    rows of its nodes), its kubeconfig, cluster variables and Flux source, and its services as the Vault wiring
    takes them: each service's name as namespace and service account, under the operator's settings of it
    (`services`: {service: {namespace, service_account, data, ...}})."""
    proxmox = cluster.get('proxmox') or {}
    talos = cluster.get('talos') or {}
    hypervisors = proxmox.get('nodes') or []
    services = services or {}

    def given(section, key, default=None):
        value = section.get(key)
        return default if value is None else value

    return {
        'name': cluster['name'],
        'proxmox': proxmox,
        'talos': {
            'name': cluster['name'],
            'node': given(proxmox, 'node', hypervisors[0] if hypervisors else None),
            'template': proxmox.get('template'),
            'iso': proxmox.get('iso'),
            'storage': proxmox.get('storage'),
            'bridge': proxmox.get('bridge'),
            'kubeconfig_path': talos.get('kubeconfig_path'),
            'talosconfig_path': talos.get('talosconfig_path'),
            'version': talos.get('version'),
            'endpoint': talos.get('endpoint'),
            'vip': talos.get('vip'),
            'install_disk': talos.get('install_disk'),
            'patches': given(talos, 'patches', []),
            'extensions': talos.get('extensions'),
            'longhorn': given(talos, 'longhorn', True),
            'extra_kernel_args': given(talos, 'extra_kernel_args', []),
            'factory_url': talos.get('factory_url'),
            'factory_ca_path': talos.get('factory_ca_path'),
            'nodes': list(nodes),
        },
        'kubeconfig': talos.get('kubeconfig_path'),
        'cluster_vars': given(cluster, 'cluster_vars', {}),
        'flux': given(cluster, 'flux', {}),
        'openclaw': cluster.get('openclaw'),
        'vault_services': [dict({'name': name, 'namespace': name, 'service_account': name}, **(services.get(name) or {}))
                           for name in given(cluster, 'services', [])],
    }
