"""The fleet inventory plugin and the fleet_* modules, through ansible-inventory, ansible and the session lab.

Without the lab: groups and host variables of fleet files, constructable options, validation errors, the lab's
inventory directory with and without the hosts.yml `castle-lab up` writes. With the lab: the live source reads
the VMs of the lab's Proxmox VE in one request (counted by the control API's request log) and a cached run in
none; `ansible -m ping` reaches the lab's OpenClaw node over SSH through a fleet file; the modules run ad hoc.
"""

import json
import os
import subprocess
import sys
import textwrap
import urllib.request

import pytest
import yaml
from harness import run_module
from kube_helpers import wait_for

from conftest import REPO, find

FIXTURES = REPO / 'tests' / 'fixtures' / 'fleet'
LAB_FLEET = REPO / 'inventories' / 'lab' / 'lab.fleet.yml'


def run(*argv, env=None, check=True):
    proc = subprocess.run(list(argv), cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
                          env=env or dict(os.environ, ANSIBLE_CONFIG=str(REPO / 'ansible.cfg')))
    if check and proc.returncode != 0:
        pytest.fail('{0} exited {1}\n{2}\n{3}'.format(' '.join(argv), proc.returncode, proc.stdout, proc.stderr))
    return proc


def plain(value):
    """ansible-inventory's JSON with the unsafe markers of API-sourced strings taken off."""
    if isinstance(value, dict):
        if set(value) == {'__ansible_unsafe'}:
            return value['__ansible_unsafe']
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def inventory_list(source, env=None):
    return plain(json.loads(run('ansible-inventory', '-i', str(source), '--list', env=env).stdout))


def members(listing, group):
    return sorted(listing.get(group, {}).get('hosts', []))


def write_fleet(path, fleet, **options):
    path.write_text(yaml.safe_dump({'plugin': 'ephemeral.castle.fleet', **options, 'fleet': fleet}, sort_keys=False))
    return path


def test_groups_and_host_vars_of_the_lab_fleet(tmp_path):
    # The fleet file alone in a directory (no hosts.yml), live source off so nothing is asked of any lab.
    data = yaml.safe_load(LAB_FLEET.read_text())
    (tmp_path / 'lab').mkdir()
    path = write_fleet(tmp_path / 'lab' / 'lab.fleet.yml', data['fleet'], live=False)
    graph = run('ansible-inventory', '-i', str(tmp_path / 'lab'), '--graph').stdout
    for group in ('@role_production', '@role_frozen', '@role_workstation', '@state_active', '@state_draining',
                  '@state_planned', '@cluster_castle', '@cluster_castle_controlplane', '@cluster_castle_worker',
                  '@openclaw'):
        assert group + ':' in graph
    listing = inventory_list(path)
    assert members(listing, 'cluster_castle_controlplane') == ['talos-cp-1', 'talos-cp-2', 'talos-cp-3']
    assert members(listing, 'cluster_castle_worker') == ['talos-w-1', 'talos-w-2', 'talos-w-3']
    assert members(listing, 'openclaw') == ['openclaw-node']
    assert members(listing, 'role_frozen') == ['pve-old'] and members(listing, 'state_draining') == ['pve-old']
    hostvars = listing['_meta']['hostvars']
    old = hostvars['pve-old']
    assert old['ansible_host'] == '127.0.10.40' and old['fleet_machine']['successor'] == 'castle-2'
    assert sorted(w['name'] for w in old['fleet_workloads_now']) == ['blog', 'identity', 'kaze', 'mcp', 'openbao']
    assert old['fleet_workloads_next'] == []
    node = hostvars['talos-w-2']
    assert 'ansible_host' not in node and node['fleet_cluster_name'] == 'castle'
    assert node['fleet_node'] == {'name': 'talos-w-2', 'role': 'worker', 'mac': 'BC:24:11:CA:57:12', 'disk': '32G',
                                  'patches': [], 'labels': {}}
    assert node['fleet_workloads_next'] == [] and node['fleet_tunnels'] == []
    # What names the cluster itself is on the cluster's group, and so in each node's variables.
    assert len(node['fleet_cluster_workloads_next']) == 5
    assert [t['name'] for t in node['fleet_cluster_tunnels']] == ['openclaw-runtime']
    assert node['fleet_cluster']['flux']['path'] == './clusters/lab' and 'nodes' not in node['fleet_cluster']
    claw = hostvars['openclaw-node']
    assert claw['ansible_port'] == 2222 and [w['name'] for w in claw['fleet_workloads_now']] == ['openclaw-gateway']
    assert sorted(t['name'] for t in claw['fleet_tunnels']) == ['openclaw-runtime', 'operator-shell']
    assert hostvars['workstation']['fleet_file'] == str(path)


def test_the_repository_lab_inventory_shows_the_fleet_groups():
    # Whether or not `castle-lab up` wrote hosts.yml beside the fleet file, the fleet groups are there.
    graph = run('ansible-inventory', '-i', 'inventories/lab', '--graph').stdout
    for group in ('@role_production', '@cluster_castle_controlplane', '@cluster_castle_worker', '@openclaw'):
        assert group + ':' in graph


def test_constructable_options(tmp_path):
    fleet = yaml.safe_load((FIXTURES / 'fixed.fleet.yml').read_text())['fleet']
    fleet['machines'][0]['labels'] = {'site': 'north'}
    fleet['machines'][1]['labels'] = {'site': 'south'}
    path = write_fleet(tmp_path / 'site.fleet.yml', fleet,
                       compose={'fleet_hosting': 'fleet_workloads_now | length'},
                       groups={'hosts_stateful': "fleet_workloads_now | selectattr('stateful') | list | length > 0"},
                       keyed_groups=[{'key': "fleet_machine.labels.site | default('none')", 'prefix': 'site'}])
    listing = inventory_list(path)
    assert members(listing, 'site_north') == ['gw-1'] and members(listing, 'site_south') == ['pve-2']
    assert members(listing, 'site_none') == ['laptop']
    assert members(listing, 'hosts_stateful') == ['pve-2']
    assert listing['_meta']['hostvars']['gw-1']['fleet_hosting'] == 1
    # strict: an expression that fails to evaluate is an error, not a skipped group.
    write_fleet(path, fleet, strict=True, groups={'broken': 'fleet_nothing_like_this.attr'})
    proc = run('ansible-inventory', '-i', str(path), '--list', check=False)
    assert 'fleet_nothing_like_this' in proc.stderr
    assert 'broken' not in json.loads(proc.stdout or '{}')


def small_fleet():
    """Every kind of row the plugin turns into hosts, groups and variables: machines of each role and state
    with connection variables and labels, workloads that stay and that move, tunnels with and without a unit,
    and clusters (one named by workloads and tunnels, one with an OpenClaw node)."""
    roles, states = ('production', 'frozen', 'workstation', 'experimental'), ('active', 'draining', 'drained', 'planned')
    machines = [{'name': 'm-{0}'.format(i), 'role': roles[i % 4], 'state': states[i // 4 % 4],
                 'labels': {'rack': 'r{0}'.format(i % 3)}} for i in range(12)]
    for i, machine in enumerate(machines[:8]):
        machine['address'] = '10.1.0.{0}'.format(i + 1)
    machines[2]['connection'] = {'ansible_port': 2222, 'ansible_user': 'ops'}
    machines[5]['successor'] = 'm-4'
    workloads = [{'name': 'w-{0}'.format(i), 'current_host': 'm-{0}'.format(i), 'target_host': 'm-{0}'.format(i // 2 * 2),
                  'owner': 'team-{0}'.format(i % 2), 'wave': 1 + i % 3, 'stateful': i % 3 == 0,
                  'volumes': ['apps/data-{0}'.format(i)] if i % 3 == 0 else []} for i in range(8)]
    workloads += [{'name': 'api', 'current_host': 'castle', 'target_host': 'castle', 'wave': 2, 'depends_on': ['w-0']},
                  {'name': 'move-in', 'current_host': 'm-1', 'target_host': 'castle', 'wave': 3}]
    tunnels = [{'name': 'plain', 'from': 'm-0', 'to': 'm-1', 'direction': 'forward', 'critical': True},
               {'name': 'unit', 'from': 'm-2', 'to': 'm-3', 'direction': 'reverse', 'actor': 'ops',
                'local_port': 8200, 'remote_port': 18200, 'workload': 'w-2'},
               {'name': 'to-cluster', 'from': 'm-4', 'to': 'castle', 'direction': 'forward', 'via': 'm-0'}]
    clusters = [{'name': 'castle', 'openclaw': 'm-6', 'talos': {'endpoint': 'https://10.1.1.10:6443'},
                 'nodes': [{'name': 'cp-1', 'role': 'controlplane', 'address': '10.1.1.1', 'vmid': 201},
                           {'name': 'wk-1', 'role': 'worker', 'mac': 'BC:24:11:00:00:01'}]},
                {'name': 'edge.lab', 'role': 'experimental', 'nodes': [{'name': 'edge-cp', 'role': 'controlplane'}]}]
    return {'machines': machines, 'workloads': workloads, 'tunnels': tunnels, 'clusters': clusters}


def test_the_listing_of_a_small_fleet_is_unchanged(tmp_path):
    # Byte for byte what the plugin listed for this fleet when the file was written, with the fleet file's path
    # in place of the temporary one: a faster plugin must list the same hosts, groups and variables. A change of
    # the schema's defaults changes it on purpose: then the expected file is written anew from the new listing.
    path = write_fleet(tmp_path / 'small.fleet.yml', small_fleet(), live=False,
                       compose={'fleet_hosting': 'fleet_workloads_now | length'},
                       groups={'moving_in': 'fleet_workloads_next | length > 0'},
                       keyed_groups=[{'key': "fleet_machine.labels.rack | default('none')", 'prefix': 'rack'}])
    listing = run('ansible-inventory', '-i', str(path), '--list').stdout.replace(str(path), '<fleet file>')
    assert listing == (FIXTURES / 'small.inventory.json').read_text()


def test_the_garbage_collector_is_paused_while_parsing_then_spared_the_inventory(tmp_path):
    # In a process of its own (the plugin loader changes how collections are imported): the collector is off
    # while the hosts are added; afterwards it is as it was before, and, when it runs, without the inventory's
    # objects (frozen), which a fleet that does not validate leaves none of.
    good = write_fleet(tmp_path / 'good.fleet.yml', {'machines': [{'name': 'a', 'role': 'production'}]})
    bad = write_fleet(tmp_path / 'bad.fleet.yml', {'machines': [{'name': 'a', 'role': 'mainframe'}]})
    script = textwrap.dedent('''
        import gc, json, sys
        from ansible.errors import AnsibleParserError
        from ansible.inventory.data import InventoryData
        from ansible.parsing.dataloader import DataLoader
        from ansible.plugins.loader import init_plugin_loader, inventory_loader
        init_plugin_loader()
        plugin = inventory_loader.get('ephemeral.castle.fleet')
        seen, populate = [], type(plugin)._populate
        type(plugin)._populate = lambda self, *args: (seen.append(gc.isenabled()), populate(self, *args))
        after = []
        for path, enabled in ((sys.argv[1], True), (sys.argv[1], False), (sys.argv[2], True)):
            (gc.enable if enabled else gc.disable)()
            gc.unfreeze()
            try:
                plugin.parse(InventoryData(), DataLoader(), path, cache=False)
            except AnsibleParserError:
                pass
            after.append([gc.isenabled(), gc.get_freeze_count() > 0])
        print(json.dumps({'during': seen, 'after': after}))
    ''')
    proc = run(sys.executable, '-c', script, str(good), str(bad))
    assert json.loads(proc.stdout) == {'during': [False, False], 'after': [[True, True], [False, False], [True, False]]}


def test_a_bad_fleet_file_names_file_key_path_and_expectation(tmp_path):
    fleet = yaml.safe_load((FIXTURES / 'fixed.fleet.yml').read_text())['fleet']
    fleet['workloads'][1]['target_host'] = 'gw-9'
    fleet['tunnels'][0]['direction'] = 'up'
    path = write_fleet(tmp_path / 'bad.fleet.yml', fleet)
    proc = run('ansible-inventory', '-i', str(path), '--list', env=dict(
        os.environ, ANSIBLE_CONFIG=str(REPO / 'ansible.cfg'), ANSIBLE_INVENTORY_UNPARSED_FAILED='true'), check=False)
    assert proc.returncode != 0
    text = ' '.join(proc.stderr.split())
    assert str(path) in text
    assert ("fleet.workloads[1].target_host: expected a machine, cluster or cluster node of the fleet, got unknown "
            "'gw-9'") in text
    assert "fleet.tunnels[0].direction: expected one of forward, reverse, got 'up'" in text


# Against the session lab.

def control(env, path, body=None):
    request = urllib.request.Request(env['CASTLE_LAB_PROXMOX_CONTROL'] + path, method='GET' if body is None else 'POST',
                                     data=None if body is None else json.dumps(body).encode(),
                                     headers={'Content-Type': 'application/json'})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def lab_cluster(env, nodes, **proxmox):
    return {'name': 'live', 'nodes': nodes, 'proxmox': {
        'api_host': env['PROXMOX_HOST'], 'api_port': 8006, 'api_token_id': env['PROXMOX_TOKEN_ID'],
        'api_token_secret': "{{ lookup('ansible.builtin.env', 'PROXMOX_TOKEN_SECRET') }}",
        'ca_path': env['PROXMOX_CA'], **proxmox}}


@pytest.fixture
def lab_vms(pve, name):
    """Three VMs in the lab: <name>-a running, <name>-b stopped, <name>-c running; {suffix: vmid}."""
    vmids = {}
    for suffix in ('a', 'b', 'c'):
        vmid = int(pve.cluster.nextid.get())
        pve.nodes('pve1').qemu.post(vmid=vmid, name='{0}-{1}'.format(name, suffix), memory=512)
        wait_for(lambda n='{0}-{1}'.format(name, suffix): find(pve, n), 'VM {0}'.format(vmid), timeout=30)
        vmids[suffix] = vmid
    for suffix in ('a', 'c'):
        pve.nodes('pve1').qemu(vmids[suffix]).status.start.post()
        wait_for(lambda v=vmids[suffix]: pve.nodes('pve1').qemu(v).status.current.get()['status'] == 'running',
                 'VM {0} running'.format(vmids[suffix]), timeout=30)
    return vmids


def test_live_state_in_one_request_and_cached(env, lab_vms, name, tmp_path):
    nodes = [{'name': name + '-a', 'role': 'controlplane', 'address': '10.9.0.1'},
             {'name': name + '-b', 'role': 'worker', 'vmid': lab_vms['b']},
             {'name': name + '-gone', 'role': 'worker'}]
    cache = tmp_path / 'cache'
    path = write_fleet(tmp_path / 'live.fleet.yml', {'machines': [{'name': 'gw', 'role': 'production'}],
                                                     'clusters': [lab_cluster(env, nodes)]},
                       cache=True, cache_plugin='ansible.builtin.jsonfile', cache_connection=str(cache))
    control(env, '/requests/reset', {})
    listing = inventory_list(path, env=env)
    seen = control(env, '/requests')['requests']
    assert seen == [['GET', '/cluster/resources']]
    hostvars = listing['_meta']['hostvars']
    running, stopped = hostvars[name + '-a'], hostvars[name + '-b']
    assert running['fleet_power'] == 'running' and running['fleet_vm']['vmid'] == lab_vms['a']
    assert running['ansible_host'] == '10.9.0.1'
    assert stopped['fleet_power'] == 'stopped' and stopped['fleet_vm']['name'] == name + '-b'
    assert hostvars[name + '-gone']['fleet_power'] == 'absent' and hostvars[name + '-gone']['fleet_vm'] is None
    # A second run reads the cache: no request at all, the same state.
    control(env, '/requests/reset', {})
    again = inventory_list(path, env=env)
    assert control(env, '/requests')['count'] == 0
    assert again['_meta']['hostvars'][name + '-b']['fleet_power'] == 'stopped'
    # --flush-cache asks the API again, once.
    run('ansible-inventory', '-i', str(path), '--list', '--flush-cache', env=env)
    assert control(env, '/requests')['requests'] == [['GET', '/cluster/resources']]
    # An API that did not answer is not cached as such: once it answers, it is asked, then cached.
    fresh = tmp_path / 'cache-2'
    for port, asked in ((1, []), (8006, [['GET', '/cluster/resources']]), (8006, [])):
        write_fleet(path, {'machines': [], 'clusters': [lab_cluster(env, nodes, api_port=port)]},
                    cache=True, cache_plugin='ansible.builtin.jsonfile', cache_connection=str(fresh))
        control(env, '/requests/reset', {})
        found = inventory_list(path, env=env)['_meta']['hostvars']
        assert control(env, '/requests')['requests'] == asked
        assert found[name + '-b'].get('fleet_power') == (None if port == 1 else 'stopped')


def test_live_agent_addresses_for_nodes_without_one(env, lab_vms, name, tmp_path):
    interfaces = [{'name': 'lo', 'hardware-address': '00:00:00:00:00:00',
                   'ip-addresses': [{'ip-address-type': 'ipv4', 'ip-address': '127.0.0.1', 'prefix': 8}]},
                  {'name': 'eth0', 'hardware-address': 'bc:24:11:00:00:0c',
                   'ip-addresses': [{'ip-address-type': 'ipv4', 'ip-address': '10.9.0.12', 'prefix': 24}]}]
    control(env, '/agent', {'vmid': lab_vms['c'], 'interfaces': interfaces})
    nodes = [{'name': name + '-c', 'role': 'controlplane'}, {'name': name + '-a', 'role': 'worker',
                                                             'address': '10.9.0.1'}]
    path = write_fleet(tmp_path / 'agent.fleet.yml', {'machines': [], 'clusters': [lab_cluster(env, nodes)]},
                       live_agent_addresses=True)
    control(env, '/requests/reset', {})
    hostvars = inventory_list(path, env=env)['_meta']['hostvars']
    assert hostvars[name + '-c']['ansible_host'] == '10.9.0.12'
    assert hostvars[name + '-a']['ansible_host'] == '10.9.0.1'
    # One listing, and one agent question for the one node without a declared address.
    assert control(env, '/requests')['requests'] == [
        ['GET', '/cluster/resources'],
        ['GET', '/nodes/pve1/qemu/{0}/agent/network-get-interfaces'.format(lab_vms['c'])]]


def test_an_unreachable_api_leaves_the_declared_data(env, tmp_path):
    nodes = [{'name': 'cp-x', 'role': 'controlplane', 'address': '10.9.0.5'}]
    path = write_fleet(tmp_path / 'down.fleet.yml', {'machines': [], 'clusters': [
        lab_cluster(env, nodes, api_port=1)]}, live_timeout=5)
    proc = run('ansible-inventory', '-i', str(path), '--list', env=env)
    assert 'live state of cluster(s) live not read from https://{0}:1'.format(env['PROXMOX_HOST']) in \
        ' '.join(proc.stderr.split())
    hostvars = json.loads(proc.stdout)['_meta']['hostvars']
    assert hostvars['cp-x']['ansible_host'] == '10.9.0.5' and 'fleet_power' not in hostvars['cp-x']


def test_ping_the_openclaw_node_through_a_fleet_file(lab, env, tmp_path):
    node = {'name': 'claw', 'address': env['CASTLE_OPENCLAW_HOST'], 'role': 'production', 'connection': {
        'ansible_port': int(env['CASTLE_OPENCLAW_PORT']), 'ansible_user': env['CASTLE_OPENCLAW_USER'],
        'ansible_ssh_private_key_file': env['CASTLE_OPENCLAW_KEY'],
        'ansible_ssh_common_args': '-o UserKnownHostsFile={0} -o StrictHostKeyChecking=yes'.format(
            env['CASTLE_OPENCLAW_KNOWN_HOSTS']),
        'ansible_python_interpreter': '/usr/bin/python3'}}
    fleet = {'machines': [node, {'name': 'desk', 'role': 'workstation'}],
             'clusters': [{'name': 'edge', 'openclaw': 'claw', 'nodes': [{'name': 'edge-cp', 'role': 'controlplane'}]}]}
    path = write_fleet(tmp_path / 'claw.fleet.yml', fleet)
    proc = run('ansible', '-i', str(path), 'openclaw', '-m', 'ansible.builtin.ping', env=env)
    assert 'claw | SUCCESS' in proc.stdout and '"ping": "pong"' in proc.stdout
    proc = run('ansible', '-i', str(path), 'role_production', '-m', 'ansible.builtin.command', '-a', 'id -un',
               env=env)
    assert env['CASTLE_OPENCLAW_USER'] in proc.stdout


# The modules, ad hoc on the controller (the session lab's inventory gives localhost its Python).

def module(lab, env, name, check=False, **args):
    outcome = run_module(env, name, check=check, inventory=lab.inventory, **args)
    return outcome.rc, outcome.result


def test_fleet_check_reports_each_critical_tunnel_on_the_workstation(lab, env):
    rc, result = module(lab, env, 'fleet_check', src=str(FIXTURES / 'workstation-tunnels.fleet.yml'))
    assert rc != 0 and not result['changed']
    assert [(v['code'], v['rows'][0]['tunnel']) for v in result['violations']] == [
        ('critical-tunnel-on-workstation', 'vault-reverse'), ('critical-tunnel-on-workstation', 'gateway-runtime')]
    assert 'vault-reverse' in result['msg'] and 'gateway-runtime' in result['msg']
    assert result['counts']['critical-tunnel-on-workstation'] == 2
    rc, result = module(lab, env, 'fleet_check', check=True, src=str(FIXTURES / 'fixed.fleet.yml'))
    assert rc == 0 and result['passed'] and result['violations'] == [] and not result['changed']


def test_fleet_check_takes_the_fleet_as_data_and_reports_every_code(lab, env):
    fleet = yaml.safe_load((FIXTURES / 'fixed.fleet.yml').read_text())['fleet']
    fleet['workloads'] += [
        {'name': 'orphan', 'current_host': 'gw-1', 'wave': 5},
        {'name': 'frozen-bound', 'current_host': 'gw-1', 'target_host': 'old', 'owner': 'x', 'wave': 6,
         'depends_on': ['ring-a']},
        {'name': 'ring-a', 'target_host': 'gw-1', 'owner': 'x', 'wave': 7, 'depends_on': ['ring-b']},
        {'name': 'ring-b', 'target_host': 'gw-1', 'owner': 'x', 'wave': 8, 'depends_on': ['ring-a']}]
    fleet['machines'].append({'name': 'old', 'role': 'frozen'})
    fleet['tunnels'][1]['critical'] = True
    fleet['workloads'][0]['wave'] = 1
    rc, result = module(lab, env, 'fleet_check', fleet=fleet, fail_on_violation=False)
    assert rc == 0 and not result['passed']
    assert sorted(code for code, n in result['counts'].items() if n) == [
        'critical-tunnel-on-workstation', 'dependency-cycle', 'wave-before-dependent', 'workload-no-owner',
        'workload-no-target', 'workload-targets-frozen']


def test_fleet_check_fails_naming_the_bad_key(lab, env):
    rc, result = module(lab, env, 'fleet_check', fleet={'machines': [{'name': 'a', 'role': 'boss'}]})
    assert rc != 0
    assert result['errors'] == ["fleet.machines[0].role: expected one of production, frozen, workstation, "
                                "experimental, got 'boss'"]


def test_drain_plan_and_gates_of_the_lab_fleet(lab, env, tmp_path):
    rc, plan = module(lab, env, 'fleet_drain_plan', src=str(LAB_FLEET), machine='pve-old')
    assert rc == 0 and not plan['changed']
    assert [(w['wave'], w['workloads']) for w in plan['waves']] == [
        (1, ['blog', 'kaze']), (2, ['mcp']), (3, ['identity']), (4, ['openbao'])]
    assert plan['ready'] == 1 and [b['waits_for'] for b in plan['waves'][1]['blocked_by']] == ['blog']
    rc, gate = module(lab, env, 'fleet_gate', src=str(LAB_FLEET), machine='pve-old')
    assert rc == 0 and not gate['passed'] and gate['target'] == 'machine/pve-old'
    assert [r['code'] for r in gate['reasons']].count('not-drained') == 5
    rc, gate = module(lab, env, 'fleet_gate', src=str(LAB_FLEET), machine='pve-old', fail_on_refusal=True)
    assert rc != 0 and 'workload openbao still runs on pve-old' in gate['msg']
    overlay = tmp_path / 'apps' / 'lab' / 'blog'
    overlay.mkdir(parents=True)
    rc, gate = module(lab, env, 'fleet_gate', src=str(LAB_FLEET), workload='blog', base_dir=str(tmp_path))
    assert rc == 0 and 'app-toml-missing' in [r['code'] for r in gate['reasons']]
    assert 'overlay-missing' not in [r['code'] for r in gate['reasons']]
    rc, gate = module(lab, env, 'fleet_gate', src=str(LAB_FLEET), workload='blog', machine='pve-old')
    assert rc != 0 and gate['msg'] == 'give exactly one of workload and machine'


def test_missing_fleet_file_fails_clearly(lab, env, tmp_path):
    rc, result = module(lab, env, 'fleet_check', src=str(tmp_path / 'none.fleet.yml'))
    assert rc != 0 and 'cannot read the fleet file' in result['msg'] and str(tmp_path) in result['msg']


def test_module_defaults_set_the_fleet_once_for_the_action_group(lab, env, tmp_path):
    play = [{'name': 'fleet rules', 'hosts': 'localhost', 'gather_facts': False,
             'module_defaults': {'group/ephemeral.castle.fleet': {'src': str(LAB_FLEET)}},
             'tasks': [{'name': 'Check', 'ephemeral.castle.fleet_check': {}, 'register': 'rules'},
                       {'name': 'Plan', 'ephemeral.castle.fleet_drain_plan': {'machine': 'pve-old'}, 'register': 'plan'},
                       {'name': 'Gate', 'ephemeral.castle.fleet_gate': {'machine': 'pve-old'}, 'register': 'gate'},
                       {'name': 'Show', 'ansible.builtin.debug': {
                           'msg': "RESULT {{ rules.passed }} {{ plan.workloads }} {{ gate.passed }}"}}]}]
    book = tmp_path / 'play.yml'
    book.write_text(yaml.safe_dump(play))
    proc = run('ansible-playbook', '-i', str(lab.inventory), str(book), env=env)
    assert 'RESULT True 5 False' in proc.stdout


def test_fleet_state_edits_only_the_state_lines(lab, env, tmp_path):
    path = tmp_path / 'lab.fleet.yml'
    original = LAB_FLEET.read_text()
    path.write_text(original)
    states = {'pve-old': 'wiped', 'castle-2': 'active'}
    edit = dict(src=str(path), states=states, inventory=lab.inventory / 'hosts.yml', diff=True)
    predicted = run_module(env, 'fleet_state', check=True, **edit)
    assert predicted.rc == 0 and '-      state: draining' in predicted.diff and '+      state: wiped' in predicted.diff
    assert path.read_text() == original
    assert run_module(env, 'fleet_state', **edit).rc == 0
    changed = [(a, b) for a, b in zip(original.splitlines(), path.read_text().splitlines()) if a != b]
    assert changed == [('      state: draining', '      state: wiped'), ('      state: planned', '      state: active')]
    assert len(path.read_text().splitlines()) == len(original.splitlines())
    rc, result = module(lab, env, 'fleet_state', src=str(path), states=states)
    assert rc == 0 and not result['changed'] and result['changed_machines'] == {}


def test_fleet_state_names_a_bad_machine_or_state_and_changes_nothing(lab, env, tmp_path):
    path = tmp_path / 'lab.fleet.yml'
    path.write_text(LAB_FLEET.read_text())
    rc, result = module(lab, env, 'fleet_state', src=str(path), states={'pve-new': 'wiped', 'pve-old': 'wiped'})
    assert rc != 0 and 'pve-new is not a machine of the fleet' in result['msg']
    rc, result = module(lab, env, 'fleet_state', src=str(path), states={'pve-old': 'gone'})
    assert rc != 0 and "pve-old: 'gone'" in result['msg'] and 'active, draining' in result['msg']
    assert path.read_text() == LAB_FLEET.read_text()
