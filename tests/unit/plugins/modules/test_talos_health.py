"""talos_health without a lab: configured nodes checked, failing checks retried within wait_timeout."""

from fake_talos import MAINTENANCE, FakeTalosctl

ARGS = dict(binary_path='/usr/bin/talosctl', control_plane_nodes=['10.0.40.11'], worker_nodes=['10.0.40.21'])
HEALTHY = ('discovered nodes: ["10.0.40.11"]\nwaiting for etcd to be healthy: ...\n'
           'waiting for etcd to be healthy: OK\nwaiting for all k8s nodes to report ready: OK\n')
NOT_READY = ('waiting for etcd to be healthy: OK\nwaiting for all k8s nodes to report ready: ...\n'
             'waiting for all k8s nodes to report ready: some nodes are not ready: [w-1]\n'
             'healthcheck error: rpc error: code = DeadlineExceeded desc = context deadline exceeded\n')


def cluster(monkeypatch, worker_state=None):
    fake = FakeTalosctl().node('10.0.40.11').node('10.0.40.21', **({'state': worker_state} if worker_state else {}))
    return fake.install(monkeypatch, 'talos_health')


def test_a_healthy_cluster_is_checked_once(run_module, monkeypatch):
    fake = cluster(monkeypatch)
    fake.answers['health'] = (0, '', HEALTHY)
    result = run_module('talos_health', **ARGS)
    assert not result.changed and result['runs'] == 1
    assert result['checked'] == ['10.0.40.11', '10.0.40.21'] and result['not_configured'] == []
    assert result['checks'][-1] == 'waiting for all k8s nodes to report ready: OK'
    (call,) = fake.ran('health')
    assert call.flag('--control-plane-nodes') == '10.0.40.11' and call.flag('--worker-nodes') == '10.0.40.21'
    assert call.flag('--wait-timeout') == '600s' and call.nodes == ['10.0.40.11']


def test_a_node_in_maintenance_is_left_out(run_module, monkeypatch):
    fake = cluster(monkeypatch, worker_state=MAINTENANCE)
    fake.answers['health'] = (0, '', HEALTHY)
    result = run_module('talos_health', **ARGS)
    assert result['not_configured'] == ['10.0.40.21'] and result['checked'] == ['10.0.40.11']
    assert fake.ran('health')[0].flag('--worker-nodes') is None


def test_a_failing_check_is_retried_until_wait_timeout_then_named(run_module, monkeypatch):
    fake = cluster(monkeypatch)
    fake.answers['health'] = (1, '', NOT_READY)
    result = run_module('talos_health', wait_timeout=10, **ARGS)
    assert result.failed and result['rc'] == 1
    assert result.msg == ('health check "all k8s nodes to report ready" did not pass within 10s (5 runs of talosctl '
                          'health): some nodes are not ready: [w-1]')
    assert [call.flag('--wait-timeout') for call in fake.ran('health')] == ['10s', '8s', '6s', '4s', '2s']
    assert fake.slept == [2, 2, 2, 2]


def test_a_check_passing_on_a_later_run(run_module, monkeypatch):
    fake = cluster(monkeypatch)
    answers = [(1, '', NOT_READY), (0, '', HEALTHY)]
    fake.answers['health'] = lambda call: answers.pop(0)
    result = run_module('talos_health', **ARGS)
    assert not result.failed and result['runs'] == 2


def test_names_that_are_not_addresses_are_named(run_module, monkeypatch):
    cluster(monkeypatch)
    result = run_module('talos_health', **dict(ARGS, worker_nodes=['w-1', '10.0.40.21']))
    assert result.failed and result.msg == 'talosctl health takes IP addresses only; not one: w-1'


def test_no_configured_control_plane_is_named(run_module, monkeypatch):
    fake = FakeTalosctl().node('10.0.40.11', state=MAINTENANCE).node('10.0.40.21')
    fake.install(monkeypatch, 'talos_health')
    result = run_module('talos_health', **ARGS)
    assert result.failed and result.msg == 'no control-plane node of 10.0.40.11 is configured yet; nothing to check'
    assert not fake.ran('health')
