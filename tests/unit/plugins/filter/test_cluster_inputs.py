"""The cluster_inputs filter: one cluster of the fleet as the playbooks take it, from a fleet file, a fleet mapping
or an inventory's hostvars, with the defaults the playbooks apply and errors naming the fleet and its clusters."""

import copy
import pathlib

import pytest
import yaml
from ansible.errors import AnsibleFilterError

from ansible_collections.ephemeral.castle.plugins.filter.fleet import FilterModule
from ansible_collections.ephemeral.castle.plugins.module_utils import fleet as fleet_model
from ansible_collections.ephemeral.castle.plugins.module_utils import fleet_inputs

REPO = pathlib.Path(__file__).resolve().parents[4]
EXAMPLE = REPO / 'inventories' / 'example' / 'site.fleet.yml'
cluster_inputs = FilterModule().filters()['cluster_inputs']


def fleet(*clusters):
    """A fleet with the given clusters (a name, or a full row)."""
    rows = [c if isinstance(c, dict) else {'name': c, 'nodes': [{'name': c + '-cp-1', 'role': 'controlplane'}]}
            for c in clusters]
    return {'machines': [{'name': 'gw', 'role': 'production'}], 'clusters': rows}


def hostvars(data, source='/site/site.fleet.yml'):
    """What the fleet inventory plugin gives each host, as ansible-inventory --list shows it, plus the controller."""
    found = {'localhost': {'fleet_file': source, 'ansible_connection': 'local'}}
    for machine in data['machines']:
        found[machine['name']] = {'fleet_file': source, 'fleet_machine': machine}
    for cluster in data['clusters']:
        row = {k: v for k, v in cluster.items() if k != 'nodes'}
        for node in cluster['nodes']:
            found[node['name']] = {'fleet_file': source, 'fleet_cluster': row, 'fleet_cluster_name': cluster['name'],
                                   'fleet_node': node}
    return found


def test_the_example_fleets_cluster_from_its_file():
    got = cluster_inputs(str(EXAMPLE))
    row = yaml.safe_load(EXAMPLE.read_text())['fleet']['clusters'][0]
    assert got['name'] == 'castle'
    assert got['proxmox'] == fleet_model.validate(yaml.safe_load(EXAMPLE.read_text())['fleet'])['clusters'][0]['proxmox']
    talos = got['talos']
    assert talos['name'] == 'castle'
    assert talos['node'] == row['proxmox'].get('node', (row['proxmox'].get('nodes') or [None])[0])
    assert talos['template'] == row['proxmox']['template']
    assert talos['version'] == 'v1.11.6' and talos['vip'] == row['talos']['vip']
    assert talos['patches'] == row['talos']['patches'] and talos['extensions'] == row['talos']['extensions']
    assert [n['name'] for n in talos['nodes']] == [n['name'] for n in row['nodes']]
    assert talos['nodes'][4]['proxmox_node'] == 'pve2'
    assert got['kubeconfig'] == row['talos']['kubeconfig_path'] == talos['kubeconfig_path']
    assert got['cluster_vars'] == row['cluster_vars']
    assert got['flux'] == dict(row['flux'])
    assert got['openclaw'] == 'openclaw-gw'
    assert got['vault_services'] == [{'name': s, 'namespace': s, 'service_account': s} for s in row['services']]


def test_a_cluster_that_gives_little_gets_the_playbooks_defaults():
    got = cluster_inputs(fleet({'name': 'c', 'proxmox': {'nodes': ['pve2', 'pve1']},
                                'nodes': [{'name': 'cp', 'role': 'controlplane'}]}))
    talos = got['talos']
    assert talos['node'] == 'pve2'  # the first of proxmox.nodes when proxmox.node is not given
    assert (talos['patches'], talos['longhorn'], talos['extra_kernel_args']) == ([], True, [])
    for key in ('template', 'iso', 'storage', 'bridge', 'kubeconfig_path', 'talosconfig_path', 'version', 'endpoint',
                'vip', 'install_disk', 'extensions', 'factory_url', 'factory_ca_path'):
        assert talos[key] is None, key
    assert talos['nodes'] == [{'name': 'cp', 'role': 'controlplane', 'patches': [], 'labels': {}}]
    assert (got['kubeconfig'], got['cluster_vars'], got['flux'], got['openclaw'], got['vault_services']) == (
        None, {}, {}, None, [])
    assert cluster_inputs(fleet({'name': 'c', 'nodes': [{'name': 'cp', 'role': 'controlplane'}]}))['talos']['node'] is None


def test_a_fleet_mapping_with_or_without_its_fleet_key_and_a_named_cluster():
    data = fleet('a', 'b')
    assert cluster_inputs(data, 'b')['talos']['nodes'][0]['name'] == 'b-cp-1'
    assert cluster_inputs({'fleet': data}, cluster='a')['name'] == 'a'


def test_the_inventorys_hostvars_give_the_cluster_and_its_nodes_in_fleet_order():
    data = fleet('a', {'name': 'b', 'proxmox': {'node': 'pve1', 'api_host': 'pve.example'},
                       'talos': {'talosconfig_path': '/t', 'longhorn': False},
                       'nodes': [{'name': 'b-w', 'role': 'worker'}, {'name': 'b-cp', 'role': 'controlplane'}],
                       'services': ['blog']})
    got = cluster_inputs(hostvars(data), 'b')
    assert [n['name'] for n in got['talos']['nodes']] == ['b-w', 'b-cp']
    assert got['proxmox'] == {'node': 'pve1', 'api_host': 'pve.example'}
    assert (got['talos']['node'], got['talos']['talosconfig_path'], got['talos']['longhorn']) == ('pve1', '/t', False)
    # The same inputs as from the fleet itself (whose rows the inventory plugin gives the hosts, defaults filled in).
    validated = fleet_model.validate(copy.deepcopy(data))
    assert cluster_inputs(hostvars(validated), 'b') == cluster_inputs(data, 'b')


def test_the_operators_service_settings_go_over_the_defaults():
    data = fleet({'name': 'c', 'nodes': [{'name': 'cp', 'role': 'controlplane'}], 'services': ['blog', 'mcp']})
    settings = {'blog': {'namespace': 'web', 'data': {'api_key': 'x'}}, 'other': {'namespace': 'elsewhere'}}
    assert cluster_inputs(hostvars(data), services=settings)['vault_services'] == [
        {'name': 'blog', 'namespace': 'web', 'service_account': 'blog', 'data': {'api_key': 'x'}},
        {'name': 'mcp', 'namespace': 'mcp', 'service_account': 'mcp'}]
    assert settings == {'blog': {'namespace': 'web', 'data': {'api_key': 'x'}}, 'other': {'namespace': 'elsewhere'}}


@pytest.mark.parametrize('given', ['hostvars', 'mapping', 'file'])
def test_a_cluster_the_fleet_does_not_have_is_named_with_the_fleet_and_its_clusters(given, tmp_path):
    data = fleet('castle', 'keep')
    path = tmp_path / 'site.fleet.yml'
    path.write_text(yaml.safe_dump({'plugin': 'ephemeral.castle.fleet', 'fleet': data}))
    source = {'hostvars': (hostvars(data, str(path)), str(path)), 'mapping': (data, 'given'),
              'file': (str(path), str(path))}[given]
    with pytest.raises(AnsibleFilterError) as failed:
        cluster_inputs(source[0], 'ghost')
    assert str(failed.value) == "cluster_inputs: fleet {0} has no cluster 'ghost'; its clusters: castle, keep".format(
        source[1])


def test_several_clusters_and_none_named_asks_for_one():
    with pytest.raises(AnsibleFilterError) as failed:
        cluster_inputs(hostvars(fleet('castle', 'keep')))
    assert str(failed.value) == ('cluster_inputs: fleet /site/site.fleet.yml has 2 clusters (castle, keep): name one '
                                 '(the playbooks take -e cluster=<name>)')


def test_an_inventory_without_a_fleet_cluster_says_so():
    with pytest.raises(AnsibleFilterError, match=r'fleet of the inventory has no cluster \(a fleet file read by the '
                                                 r'ephemeral.castle.fleet inventory plugin, with clusters\)'):
        cluster_inputs({'localhost': {'ansible_connection': 'local'}})
    with pytest.raises(AnsibleFilterError, match="fleet /site/site.fleet.yml has no cluster 'castle'; its clusters: none"):
        cluster_inputs(hostvars(fleet()), 'castle')


def test_a_fleet_that_does_not_validate_or_a_file_that_cannot_be_read_fails_naming_it(tmp_path):
    with pytest.raises(AnsibleFilterError, match=r'the fleet given: 1 error\(s\) in the fleet:\n  '
                                                 r'fleet.clusters\[0\].nodes: required key is missing'):
        cluster_inputs({'machines': [], 'clusters': [{'name': 'c'}]})
    missing = tmp_path / 'none.fleet.yml'
    with pytest.raises(AnsibleFilterError, match='(?s){0}: 1 error.*cannot read the fleet file'.format(missing)):
        cluster_inputs(str(missing))


@pytest.mark.parametrize('fleet_arg, services, message', [
    (['not', 'a', 'fleet'], None, 'expected a fleet file path, a fleet or hostvars, got list'),
    ({'machines': [], 'clusters': []}, ['blog'], 'services must be a mapping of service name to its settings, got list'),
])
def test_inputs_of_the_wrong_type_are_named(fleet_arg, services, message):
    with pytest.raises(AnsibleFilterError, match=message):
        cluster_inputs(fleet_arg, services=services)


def test_pick_cluster_and_cluster_inputs_work_on_plain_data():
    assert fleet_inputs.pick_cluster(['only'], None, 'f') == 'only'
    assert fleet_inputs.pick_cluster(['a', 'b'], 'b', 'f') == 'b'
    got = fleet_inputs.cluster_inputs({'name': 'c', 'proxmox': {'node': ''}}, [])
    assert got['talos']['node'] == ''  # given, even empty: not replaced by a default
