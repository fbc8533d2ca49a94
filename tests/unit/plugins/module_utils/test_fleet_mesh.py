"""The fleet's mesh as data: tunnels with ports validated, each tunnel as its unit (ssh forwarding, listener, the
principal's allowed forwarding), each machine's part, and the rules on port clashes, unit counts and critical
tunnels that still need a workstation."""

import copy
import pathlib

import pytest

from ansible_collections.ephemeral.castle.plugins.module_utils import fleet, fleet_mesh, fleet_rules, fleet_schema

REPO = pathlib.Path(__file__).resolve().parents[4]
LAB_MESH = REPO / 'inventories' / 'lab-mesh' / 'mesh.fleet.yml'


def mesh(*tunnels, machines=None, workloads=None):
    data = {'machines': machines or [{'name': 'a', 'address': '10.0.0.1', 'role': 'production'},
                                     {'name': 'b', 'address': '10.0.0.2', 'role': 'production'},
                                     {'name': 'ws', 'address': '10.0.0.9', 'role': 'workstation'},
                                     {'name': 'old', 'role': 'frozen', 'state': 'wiped'}],
            'workloads': workloads or [{'name': 'web', 'current_host': 'b', 'target_host': 'b', 'owner': 'o', 'wave': 1},
                                       {'name': 'rep', 'current_host': 'ws', 'target_host': 'b', 'owner': 'o',
                                        'wave': 2}],
            'tunnels': list(tunnels)}
    return data


def tunnel(name, **keys):
    row = {'name': name, 'from': 'a', 'to': 'b', 'direction': 'forward', 'local_port': 18080, 'remote_port': 8080}
    row.update(keys)
    return row


def validated(data):
    return fleet_schema.validate(copy.deepcopy(data), 'mesh.fleet.yml')


def errors_of(data):
    with pytest.raises(fleet_schema.FleetError) as caught:
        fleet_schema.validate(copy.deepcopy(data), 'mesh.fleet.yml')
    return caught.value.errors


def test_a_forward_tunnel_listens_on_its_source_and_may_open_only_its_target():
    unit = fleet_mesh.plan(validated(mesh(tunnel('web', actor='gw', workload='web'))))['tunnels'][0]
    assert unit['unit'] == 'castle-tunnel-web.service' and unit['user'] == 'castle-gw'
    assert unit['forward'] == ['-L', '127.0.0.1:18080:127.0.0.1:8080']
    assert unit['listen'] == {'machine': 'a', 'address': '127.0.0.1', 'port': 18080}
    assert unit['target'] == {'machine': 'b', 'address': '127.0.0.1', 'port': 8080}
    assert (unit['ssh_host'], unit['ssh_port'], unit['permit']) == ('10.0.0.2', 22, 'permitopen="127.0.0.1:8080"')


def test_a_reverse_tunnel_listens_on_the_far_machine_and_may_listen_only_there():
    unit = fleet_mesh.plan(validated(mesh(tunnel('cb', direction='reverse', remote_address='::1'))))['tunnels'][0]
    assert unit['forward'] == ['-R', '[::1]:8080:127.0.0.1:18080']
    assert unit['listen'] == {'machine': 'b', 'address': '::1', 'port': 8080}
    assert unit['permit'] == 'permitlisten="[::1]:8080"' and unit['actor'] == 'a'


def test_a_reverse_tunnel_may_listen_only_on_loopback():
    # sshd's default GatewayPorts binds a remote forward to loopback whatever the client asks.
    assert errors_of(mesh(tunnel('cb', direction='reverse', remote_address='0.0.0.0'))) == [
        "fleet.tunnels[0].remote_address: a reverse tunnel listens on the far machine's loopback (127.0.0.1, ::1), "
        "got '0.0.0.0'"]


def test_ipv6_addresses_are_bracketed_in_the_forwarding():
    unit = fleet_mesh.plan(validated(mesh(tunnel('v6', local_address='::1', remote_address='fd00::5'))))['tunnels'][0]
    assert unit['forward'] == ['-L', '[::1]:18080:[fd00::5]:8080']


def test_each_machine_gets_its_units_and_the_principals_its_sshd_accepts():
    data = mesh(tunnel('one', actor='gw'), tunnel('two', actor='gw', local_port=18081, remote_port=8081),
                tunnel('back', actor='gw', direction='reverse', local_port=9000, remote_port=29000),
                tunnel('doc', to='ws', local_port=None, remote_port=None))
    plan = fleet_mesh.plan(validated(data))
    assert [t['name'] for t in plan['machines']['a']['tunnels']] == ['back', 'one', 'two']
    assert plan['machines']['a']['actors'] == ['gw'] and plan['machines']['a']['principals'] == []
    assert plan['machines']['b']['principals'] == [
        'restrict,port-forwarding,permitlisten="127.0.0.1:29000",permitopen="127.0.0.1:8080",'
        'permitopen="127.0.0.1:8081" gw']
    # A machine without tunnels is still visited (its old units go); a wiped one is not.
    assert plan['machines']['ws'] == {'tunnels': [], 'actors': [], 'principals': [], 'address': '10.0.0.9',
                                      'role': 'workstation'}
    assert 'old' not in plan['machines']
    assert (plan['sources'], plan['targets'], plan['unmanaged']) == (['a'], ['b'], ['doc'])


def test_a_tunnel_through_a_cluster_ends_at_the_machine_named_by_via():
    data = mesh(tunnel('k8s', to='castle', via='b'))
    data['clusters'] = [{'name': 'castle', 'nodes': [{'name': 'cp', 'role': 'controlplane'}]}]
    unit = fleet_mesh.plan(validated(data))['tunnels'][0]
    assert (unit['to'], unit['via'], unit['ssh_host']) == ('castle', 'b', '10.0.0.2')
    del data['tunnels'][0]['via']
    assert errors_of(data) == ["fleet.tunnels[0].via: 'castle' is not a machine, so it runs no sshd for the tunnel: "
                               "name the machine that does"]


@pytest.mark.parametrize('keys, error', [
    ({'remote_port': None}, 'fleet.tunnels[0].remote_port: a tunnel with a unit needs both local_port and remote_port'),
    ({'local_port': 0}, 'fleet.tunnels[0].local_port: expected a TCP port (1-65535), got 0'),
    ({'ssh_port': 70000}, 'fleet.tunnels[0].ssh_port: expected a TCP port (1-65535), got 70000'),
    ({'actor': 'Gate Way'}, "fleet.tunnels[0].actor: expected a name of lower-case letters, digits and dashes "
                            "(at most 24), got 'Gate Way'"),
    ({'workload': 'nope'}, "fleet.tunnels[0].workload: expected a workload of the fleet, got unknown 'nope'"),
    ({'via': 'nope'}, "fleet.tunnels[0].via: expected a machine of the fleet (whose sshd ends the tunnel), got "
                      "unknown 'nope'"),
])
def test_bad_tunnel_settings_are_named_by_their_key(keys, error):
    assert errors_of(mesh(tunnel('t', **keys))) == [error]


def codes(data, severity=None):
    return [(v['code'], v['severity']) for v in fleet_rules.check(validated(data))
            if severity is None or v['severity'] == severity]


def test_two_tunnels_listening_on_one_port_of_a_machine_clash():
    data = mesh(tunnel('one'), tunnel('two', remote_port=8081),
                # Another address of the same machine does not clash, unless one of them listens on every address.
                tunnel('three', local_address='10.0.0.1', remote_port=8082),
                tunnel('other-machine', **{'from': 'b', 'to': 'a'}))
    found = [v for v in fleet_rules.check(validated(data)) if v['code'] == 'tunnel-port-clash']
    assert [v['message'] for v in found] == ['tunnels one and two both listen on a port 18080']
    data['tunnels'][2]['local_address'] = '0.0.0.0'
    assert codes(data).count(('tunnel-port-clash', 'error')) == 3


def test_more_than_five_units_on_a_machine_warn_without_failing():
    data = mesh(*[tunnel('t{0}'.format(i), local_port=18000 + i) for i in range(5)])
    assert codes(data) == []
    data['tunnels'].append(tunnel('t5', local_port=18005))
    assert codes(data) == [('mesh-unit-threshold', 'warning')]


def test_a_critical_tunnel_on_a_workstation_is_a_warning_only_until_its_workloads_wave_is_done():
    data = mesh(tunnel('feed', **{'from': 'ws', 'critical': True, 'workload': 'rep'}))
    assert codes(data) == [('critical-tunnel-on-workstation', 'warning')]
    message = fleet_rules.check(validated(data))[0]['message']
    assert message == ('critical tunnel feed starts on workstation ws (allowed until workload rep completes wave 2); '
                       'production must run with the workstation off')
    data['workloads'][1]['current_host'] = 'b'
    assert codes(data) == [('critical-tunnel-on-workstation', 'error')]
    assert 'after workload rep completed wave 2' in fleet_rules.check(validated(data))[0]['message']
    # Without a workload it is an error at once; going through the workstation counts too.
    data = mesh(tunnel('hop', critical=True, to='castle', via='ws', local_port=1, remote_port=2))
    data['clusters'] = [{'name': 'castle', 'nodes': [{'name': 'cp', 'role': 'controlplane'}]}]
    assert codes(data) == [('critical-tunnel-on-workstation', 'error')]
    assert 'goes through workstation ws' in fleet_rules.check(validated(data))[0]['message']


def test_the_lab_mesh_fleet_keeps_its_rules_and_plans_every_machine():
    data = fleet.load_file(str(LAB_MESH))
    assert fleet_rules.check(data) == []
    plan = fleet_mesh.plan(data)
    assert sorted(plan['machines']) == ['railiance00', 'railiance01', 'railiance02', 'workstation']
    assert plan['sources'] == ['railiance00', 'railiance01', 'workstation']
    assert {t['direction'] for t in plan['tunnels']} == {'forward', 'reverse'}
