"""talos_info without a lab: each node's state and version, the members and etcd, never a change."""

from fake_talos import DOWN, MAINTENANCE, FakeTalosctl

ARGS = dict(binary_path='/usr/bin/talosctl')


def test_configured_maintenance_and_unreachable_nodes(run_module, monkeypatch):
    fake = FakeTalosctl().node('10.0.40.11', etcd=[dict(id='3a2f', hostname='cp-1')])
    fake.node('10.0.40.21', state=MAINTENANCE).node('10.0.40.22', state=DOWN)
    fake.install(monkeypatch, 'talos_info')
    result = run_module('talos_info', check_mode=True, nodes=['10.0.40.11', '10.0.40.21', '10.0.40.22'], **ARGS)
    assert not result.changed and not result.failed
    nodes = result['nodes']
    assert nodes['10.0.40.11'] == dict(state='configured', stage='running', ready=True, version='v1.11.6')
    assert nodes['10.0.40.21'] == dict(state='maintenance', stage='maintenance', ready=False, version=None)
    assert nodes['10.0.40.22']['state'] == 'unreachable' and 'connection refused' in nodes['10.0.40.22']['error']
    assert result['members'] == [dict(hostname='cp-1', machineType='controlplane')]
    assert result['etcd_members'][0]['HOSTNAME'] == 'cp-1'


def test_no_configured_node_reads_no_members(run_module, monkeypatch):
    fake = FakeTalosctl().node('10.0.40.21', state=MAINTENANCE).install(monkeypatch, 'talos_info')
    result = run_module('talos_info', nodes=['10.0.40.21'], **ARGS)
    assert result['members'] == [] and result['etcd_members'] == []
    assert not fake.ran('get members') and not fake.ran('etcd members')


def test_no_nodes_is_named(run_module, monkeypatch):
    FakeTalosctl().install(monkeypatch, 'talos_info')
    result = run_module('talos_info', **ARGS)
    assert result.failed and result.msg == 'nodes must name the node to read'
