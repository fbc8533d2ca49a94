# -*- coding: utf-8 -*-
# Copyright: ephemeral.castle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A cluster of the fleet as the playbooks take it (the ephemeral.castle.cluster_inputs filter): which cluster
is meant, and its inputs with the playbooks' defaults."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type


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
        'backup': cluster.get('backup') or {},
        'vault_services': [dict({'name': name, 'namespace': name, 'service_account': name}, **(services.get(name) or {}))
                           for name in given(cluster, 'services', [])],
    }
