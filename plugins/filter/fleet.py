# -*- coding: utf-8 -*-
# Copyright: ephemeral.castle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Filters over the fleet; their documentation is in the YAML file of each filter beside this one."""

from collections.abc import Mapping

from ansible.errors import AnsibleFilterError
from ansible_collections.ephemeral.castle.plugins.module_utils import fleet as fleet_model
from ansible_collections.ephemeral.castle.plugins.module_utils import fleet_inputs


def _is_fleet(value):
    """A fleet mapping (machines, clusters...) rather than an inventory's host variables."""
    return 'machines' in value and isinstance(value['machines'], list)


def _fleet_clusters(fleet):
    """{cluster name: (cluster row, node rows)} of a validated fleet."""
    return {c['name']: (c, c['nodes']) for c in fleet['clusters']}


def _inventory_clusters(hostvars):
    """(source, {cluster name: [its hosts]}) of an inventory's host variables, read by ephemeral.castle.fleet."""
    source, hosts = None, {}
    for host in hostvars:
        found = hostvars[host]
        if source is None and 'fleet_file' in found:
            source = found['fleet_file']
        if 'fleet_cluster_name' in found:
            hosts.setdefault(found['fleet_cluster_name'], []).append(host)
    return source or 'of the inventory', hosts


def cluster_inputs(fleet, cluster=None, services=None):
    """The inputs of one cluster of `fleet`: a fleet file's path, a fleet mapping (or a mapping with the fleet under
    `fleet`), or an inventory's hostvars read by ephemeral.castle.fleet. `cluster` names it (none: the only one);
    `services` holds the operator's settings of its services."""
    if services is not None and not isinstance(services, Mapping):
        raise AnsibleFilterError('cluster_inputs: services must be a mapping of service name to its settings, got '
                                 '{0}'.format(type(services).__name__))
    try:
        if isinstance(fleet, str):
            source, rows = fleet, _fleet_clusters(fleet_model.load_file(fleet))
        elif isinstance(fleet, Mapping) and isinstance(fleet.get('fleet'), Mapping) and _is_fleet(fleet['fleet']):
            source, rows = 'given', _fleet_clusters(fleet_model.validate(fleet['fleet'], 'the fleet given'))
        elif isinstance(fleet, Mapping) and _is_fleet(fleet):
            source, rows = 'given', _fleet_clusters(fleet_model.validate(fleet, 'the fleet given'))
        elif isinstance(fleet, Mapping):
            source, hosts = _inventory_clusters(fleet)
            name = fleet_inputs.pick_cluster(list(hosts), cluster, source)
            members = hosts[name]
            row = fleet[members[0]]['fleet_cluster']
            return fleet_inputs.cluster_inputs(row, [fleet[host]['fleet_node'] for host in members], services)
        else:
            raise AnsibleFilterError('cluster_inputs: expected a fleet file path, a fleet or hostvars, got {0}'.format(
                type(fleet).__name__))
        name = fleet_inputs.pick_cluster(list(rows), cluster, source)
    except (fleet_model.FleetError, ValueError) as exc:
        raise AnsibleFilterError('cluster_inputs: {0}'.format(exc))
    row, nodes = rows[name]
    return fleet_inputs.cluster_inputs(row, nodes, services)


class FilterModule:
    def filters(self):
        return {'cluster_inputs': cluster_inputs}
