# -*- coding: utf-8 -*-
# Copyright: ephemeral.castle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

DOCUMENTATION = r"""
name: fleet
short_description: The fleet file as hosts and groups, with live VM state from Proxmox VE
version_added: 0.1.0
description:
  - Reads a fleet file (C(*.fleet.yml) or C(*.fleet.yaml), with O(plugin) set to C(ephemeral.castle.fleet)) holding the
    fleet under O(fleet) (machines, workloads, tunnels and clusters). The fleet is validated first; every error
    names the file, the path of the bad key and what was expected. See C(docs/fleet.md) for the schema.
  - Every machine and every cluster node becomes a host. Groups are C(role_<role>) and C(state_<state>) for
    machines, C(cluster_<name>), C(cluster_<name>_controlplane) and C(cluster_<name>_worker) for cluster nodes,
    and C(openclaw) for the machines the clusters name as their OpenClaw node. Characters that are not valid in
    group names become C(_).
  - Host variables are C(fleet_machine) (the machine's row) or C(fleet_node) and C(fleet_cluster_name) (a cluster
    node's row and cluster), C(fleet_role), C(fleet_state), C(fleet_workloads_now) (workloads it hosts now),
    C(fleet_workloads_next) (workloads that will move to it), C(fleet_tunnels) (tunnels that start or end on it),
    and the machine's C(connection) variables, with C(ansible_host) from its address. The group C(all) gets
    C(fleet_file) (the path of the fleet file, for the C(src) option of the fleet modules). Each C(cluster_<name>)
    group gets C(fleet_cluster) (the cluster's row without its nodes, which are the group's hosts) and
    C(fleet_cluster_workloads_now), C(fleet_cluster_workloads_next) and C(fleet_cluster_tunnels) for the
    workloads and tunnels that name the cluster itself.
  - When a cluster names a Proxmox VE API (C(proxmox.api_host)) and O(live) is on, the power state of its nodes'
    VMs comes from C(GET /cluster/resources?type=vm), one request per API whatever the number of VMs, and is
    merged into C(fleet_vm) and C(fleet_power). Proxmox VE does not list addresses there; a node without a
    declared address takes the one its guest agent reports when O(live_agent_addresses) is on (one more request
    per such running VM). The answers are cached with the inventory cache options.
  - The API token secret comes from the cluster's C(proxmox.api_token_secret), which must be a template that looks
    it up (a file, an environment variable, Vault), or else from O(proxmox_token_secret).
notes:
  - While it parses a fleet file the plugin pauses Python's cyclic garbage collector; then it collects once and
    freezes what is left (C(gc.freeze)), so that later collections skip the inventory's objects. These are still
    freed once nothing refers to them; only reference cycles among them stay until the process ends.
author:
  - ephemeral.castle maintainers (@ephemeral-castle)
extends_documentation_fragment:
  - ansible.builtin.constructed
  - ansible.builtin.inventory_cache
options:
  plugin:
    description: The name of this plugin; it makes the file a fleet inventory source.
    required: true
    type: str
    choices: [ephemeral.castle.fleet]
  fleet:
    description: The fleet; see C(docs/fleet.md) for its keys.
    required: true
    type: dict
  live:
    description: Read the clusters' VMs from their Proxmox VE API when they name one.
    type: bool
    default: true
  live_timeout:
    description: Seconds to wait for a Proxmox VE API before going on with the declared data (and a warning).
    type: int
    default: 10
  live_agent_addresses:
    description: For running VMs of nodes without a declared address, ask the guest agent for one.
    type: bool
    default: false
  proxmox_token_secret:
    description: The API token secret for clusters whose C(proxmox) section does not look one up.
    type: str
    env:
      - name: PROXMOX_TOKEN_SECRET
"""

EXAMPLES = r"""
# inventories/site/site.fleet.yml
plugin: ephemeral.castle.fleet
cache: true
cache_plugin: ansible.builtin.jsonfile
cache_connection: ~/.cache/castle-fleet
keyed_groups:
  - key: fleet_machine.labels.site | default('none')
    prefix: site
groups:
  wipe_candidates: fleet_state == 'drained'
compose:
  fleet_running: fleet_power | default('') == 'running'
fleet:
  machines:
    - {name: gw-1, address: 10.0.40.10, role: production}
  clusters:
    - name: castle
      proxmox: {api_host: pve1.example.internal, api_token_id: "ansible@pve!fleet",
                api_token_secret: "{{ lookup('ansible.builtin.env', 'PROXMOX_TOKEN_SECRET') }}"}
      nodes:
        - {name: cp-1, role: controlplane, vmid: 201, address: 10.0.40.21}
"""

import functools
import gc
import json
import os
from urllib.parse import quote, urlencode

from ansible.errors import AnsibleError, AnsibleParserError
from ansible.module_utils.common.text.converters import to_native
from ansible.plugins.inventory import BaseInventoryPlugin, Cacheable, Constructable
from ansible.template import trust_as_template
from ansible_collections.ephemeral.castle.plugins.module_utils import fleet as fleet_model

try:
    import yaml
    FastLoader = getattr(yaml, 'CSafeLoader', yaml.SafeLoader)
    HAS_YAML = True
except ImportError:
    HAS_YAML = False

SUFFIXES = ('.fleet.yml', '.fleet.yaml')


def trusted(value):
    """The fleet file's own data with its templates trusted, as ansible's loader trusts an inventory file's."""
    if isinstance(value, dict):
        return {k: trusted(v) for k, v in value.items()}
    if isinstance(value, list):
        return [trusted(v) for v in value]
    if isinstance(value, str):
        return trust_as_template(value)
    return value


@functools.lru_cache(maxsize=None)
def group_name(*parts):
    return ''.join(c if c.isalnum() or c == '_' else '_' for c in '_'.join(parts))


class InventoryModule(BaseInventoryPlugin, Constructable, Cacheable):
    NAME = 'ephemeral.castle.fleet'

    def verify_file(self, path):
        return super().verify_file(path) and path.endswith(SUFFIXES)

    def parse(self, inventory, loader, path, cache=True):
        super().parse(inventory, loader, path, cache)
        self._source = path
        # Every object a fleet file makes (its rows, their copies in the inventory) lives as long as the inventory,
        # so the cyclic garbage collector would only walk them again and again: while they pile up, and later
        # while ansible lists or runs over them. It is paused during the parse; then, once the garbage is collected,
        # what is left is moved out of its reach (gc.freeze, as before a fork: ansible's workers share it the
        # better) and it runs again as before. At 10,000 machines, `ansible-inventory --list` takes a fifth less.
        collecting = gc.isenabled()
        gc.disable()
        try:
            self._build(path, cache)
            if collecting:
                gc.collect()
                gc.freeze()
        finally:
            if collecting:
                gc.enable()

    def _build(self, path, cache):
        self._read_fleet_file(path)
        try:
            fleet = fleet_model.validate(self.get_option('fleet'), path)
        except fleet_model.FleetError as exc:
            raise AnsibleParserError(to_native(exc))
        live = self._live(fleet, path, cache) if self.get_option('live') else {}
        self._populate(fleet, path, live)

    def _read_fleet_file(self, path):
        """Options and fleet from the file. Plain YAML is read with libyaml, many times faster on large fleets than
        ansible's loader, which tags every value with its origin; a file with tags of ansible's (such as !vault)
        goes through ansible's loader."""
        if not HAS_YAML:
            return self._read_config_data(path)
        try:
            with open(path, 'rb') as handle:
                loader = FastLoader(handle)
                try:
                    config = loader.get_single_data()
                finally:
                    loader.dispose()
        except yaml.constructor.ConstructorError:
            return self._read_config_data(path)
        except (OSError, yaml.YAMLError) as exc:
            raise AnsibleParserError('{0}: {1}'.format(path, to_native(exc)))
        if not isinstance(config, dict) or config.get('plugin') not in (getattr(self, '_redirected_names', None)
                                                                        or [self.NAME]):
            raise AnsibleParserError('{0} is not a fleet file (plugin: {1} expected)'.format(path, self.NAME))
        self.set_options(direct=trusted(config), var_options=self._vars)
        if self.get_option('cache'):
            self.load_cache_plugin()
        return config

    # Live state from Proxmox VE.

    def _live(self, fleet, path, cache):
        apis = {}
        for cluster in fleet['clusters']:
            if cluster['proxmox'].get('api_host'):
                apis.setdefault(self._api_key(cluster['proxmox']), []).append(cluster)
        if not apis:
            return {}
        cache_key = self.get_cache_key(path)
        found = {}
        if self.get_option('cache') and cache:
            try:
                found = dict(self._cache[cache_key])
            except KeyError:
                found = {}
        # APIs the cache does not hold (a new cluster, or one that did not answer last time) are asked now.
        missing = [key for key in apis if key not in found]
        for key in missing:
            clusters = apis[key]
            try:
                found[key] = self._read_api(clusters[0]['proxmox'], clusters)
            except (AnsibleError, OSError, ValueError) as exc:
                self.display.warning('fleet {0}: live state of cluster(s) {1} not read from {2}, going on with '
                                     'the declared data: {3}'.format(path, ', '.join(c['name'] for c in clusters),
                                                                     key, to_native(exc)))
        if missing and self.get_option('cache'):
            self._cache[cache_key] = found
        return found

    @staticmethod
    def _api_key(proxmox):
        return 'https://{0}:{1}'.format(proxmox['api_host'], proxmox.get('api_port', 8006))

    def _template(self, value, path_vars):
        if value is None or not self.templar.is_template(value):
            return value
        return self.templar.copy_with_new_env(available_variables=path_vars).template(value)

    def _get(self, proxmox, path_vars, url_path, query=None):
        token_id = self._template(proxmox.get('api_token_id'), path_vars)
        secret = self._template(proxmox.get('api_token_secret'), path_vars) or self.get_option('proxmox_token_secret')
        if not token_id or not secret:
            raise AnsibleError('no API token: set proxmox.api_token_id and proxmox.api_token_secret (a lookup) or the '
                               'PROXMOX_TOKEN_SECRET environment variable')
        # Imported here: only a live read needs it, and it alone adds a tenth of a second to every start-up.
        from ansible.module_utils.urls import open_url
        url = '{0}/api2/json{1}'.format(self._api_key(proxmox), url_path)
        if query:
            url += '?' + urlencode(query)
        response = open_url(url, headers={'Authorization': 'PVEAPIToken={0}={1}'.format(token_id, secret.strip())},
                            validate_certs=proxmox.get('validate_certs', True),
                            ca_path=self._template(proxmox.get('ca_path'), path_vars),
                            timeout=self.get_option('live_timeout'))
        return json.loads(response.read())['data']

    def _read_api(self, proxmox, clusters):
        path_vars = {'inventory_dir': os.path.dirname(self._source), 'inventory_file': self._source}
        resources = self._get(proxmox, path_vars, '/cluster/resources', {'type': 'vm'})
        vms = [{k: vm.get(k) for k in ('vmid', 'name', 'node', 'status', 'uptime', 'tags', 'lock', 'template')}
               for vm in resources if vm.get('type') == 'qemu']
        agents, index = {}, self._vm_index(vms)
        if self.get_option('live_agent_addresses'):
            for cluster in clusters:
                for node in cluster['nodes']:
                    vm = self._match(node, index)
                    if node.get('address') or not vm or vm['status'] != 'running':
                        continue
                    agents[str(vm['vmid'])] = self._agent_address(proxmox, path_vars, vm)
        return {'vms': vms, 'agent_addresses': agents}

    def _agent_address(self, proxmox, path_vars, vm):
        try:
            data = self._get(proxmox, path_vars, '/nodes/{0}/qemu/{1}/agent/network-get-interfaces'.format(
                quote(vm['node']), vm['vmid']))
        except (AnsibleError, OSError, ValueError):
            return None
        for iface in data.get('result', []):
            if iface.get('name') == 'lo':
                continue
            for address in iface.get('ip-addresses', []):
                if address.get('ip-address-type') == 'ipv4':
                    return address.get('ip-address')
        return None

    @staticmethod
    def _vm_index(vms):
        """The VMs (templates left out) by vmid and by name; with two VMs of one name, the first."""
        by_vmid, by_name = {}, {}
        for vm in vms:
            if not vm.get('template'):
                by_vmid.setdefault(vm['vmid'], vm)
                by_name.setdefault(vm['name'], vm)
        return by_vmid, by_name

    @staticmethod
    def _match(node, index):
        """The node's VM: by vmid when the fleet gives one, else by name."""
        by_vmid, by_name = index
        return by_vmid.get(node['vmid']) if node.get('vmid') is not None else by_name.get(node['name'])

    # Hosts, groups and variables.

    def _populate(self, fleet, path, live):
        inv = self.inventory
        self._index(fleet)
        # The path only, not the fleet itself: every host's variables would repeat it.
        inv.set_variable('all', 'fleet_file', path)
        openclaw = {c['openclaw'] for c in fleet['clusters'] if c.get('openclaw')}
        hosts = []
        for machine in fleet['machines']:
            name = machine['name']
            inv.add_host(name)
            for group in (group_name('role', machine['role']), group_name('state', machine['state'])):
                inv.add_child(inv.add_group(group), name)
            if name in openclaw:
                inv.add_child(inv.add_group('openclaw'), name)
            if machine.get('address'):
                inv.set_variable(name, 'ansible_host', machine['address'])
            for key, value in machine['connection'].items():
                inv.set_variable(name, key, value)
            self._set_vars(name, [name], {'fleet_machine': machine, 'fleet_role': machine['role'],
                                          'fleet_state': machine['state']})
            hosts.append(name)
        for cluster in fleet['clusters']:
            base = group_name('cluster', cluster['name'])
            inv.add_group(base)
            # The cluster without its nodes (each node is a host of the group, with its row in fleet_node).
            inv.set_variable(base, 'fleet_cluster', {k: v for k, v in cluster.items() if k != 'nodes'})
            self._set_vars(base, [cluster['name']], {}, prefix='fleet_cluster_')
            found = live.get(self._api_key(cluster['proxmox'])) if cluster['proxmox'].get('api_host') else None
            index = self._vm_index(found['vms']) if found is not None else None
            for node in cluster['nodes']:
                name = node['name']
                inv.add_host(name)
                inv.add_child(base, name)
                inv.add_child(inv.add_group(group_name(base, node['role'])), name)
                values = {'fleet_node': node, 'fleet_cluster_name': cluster['name'], 'fleet_role': cluster['role'],
                          'fleet_state': 'active'}
                address = node.get('address')
                if found is not None:
                    vm = self._match(node, index)
                    values['fleet_vm'] = vm
                    values['fleet_power'] = vm['status'] if vm else 'absent'
                    if vm and not address:
                        address = found['agent_addresses'].get(str(vm['vmid']))
                if address:
                    inv.set_variable(name, 'ansible_host', address)
                self._set_vars(name, [name], values)
                hosts.append(name)
        strict, compose = self.get_option('strict'), self.get_option('compose')
        groups, keyed_groups = self.get_option('groups'), self.get_option('keyed_groups')
        if not (compose or groups or keyed_groups):
            return
        for name in hosts:
            host_vars = inv.get_host(name).get_vars()
            self._set_composite_vars(compose, host_vars, name, strict=strict)
            self._add_host_to_composed_groups(groups, host_vars, name, strict=strict)
            self._add_host_to_keyed_groups(keyed_groups, host_vars, name, strict=strict)

    def _index(self, fleet):
        self._now, self._next, self._tunnels = {}, {}, {}
        for w in fleet['workloads']:
            self._now.setdefault(w.get('current_host'), []).append(w)
            if w.get('target_host') != w.get('current_host'):
                self._next.setdefault(w.get('target_host'), []).append(w)
        for t in fleet['tunnels']:
            for end in sorted({t['from'], t['to']}):
                self._tunnels.setdefault(end, []).append(t)

    def _set_vars(self, name, places, values, prefix='fleet_'):
        values[prefix + 'workloads_now'] = [w for p in places for w in self._now.get(p, ())]
        values[prefix + 'workloads_next'] = [w for p in places for w in self._next.get(p, ())
                                             if w.get('current_host') not in places]
        values[prefix + 'tunnels'] = [t for p in places for t in self._tunnels.get(p, ())]
        for key, value in values.items():
            self.inventory.set_variable(name, key, value)
