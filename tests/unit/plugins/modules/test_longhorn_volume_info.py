"""longhorn_volume_info against a fake Kubernetes API with Longhorn: replicas per volume, the nodes holding a
healthy copy, which node holds a volume's last healthy copy, and degraded volumes."""

import pytest

import fake_kube
from longhorn_objects import replica, volume


@pytest.fixture
def cluster(monkeypatch):
    fake = fake_kube.install(monkeypatch)
    fake.serve_longhorn()
    fake.put(volume('pvc-aaa', claim='apps/data'))
    fake.put(replica('pvc-aaa-r-1', 'pvc-aaa', 'node-1'))
    fake.put(replica('pvc-aaa-r-2', 'pvc-aaa', 'node-2'))
    fake.put(volume('pvc-bbb', claim='apps/uploads', robustness='degraded'))
    fake.put(replica('pvc-bbb-r-1', 'pvc-bbb', 'node-3'))
    fake.put(replica('pvc-bbb-r-2', 'pvc-bbb', 'node-1', state='error', failed_at='2026-12-04T19:00:00Z'))
    fake.put(volume('pvc-ccc', replicas=1, state='detached', robustness='unknown'))
    fake.put(replica('pvc-ccc-r-1', 'pvc-ccc', 'node-2', state='stopped'))
    return fake


def info(run_module, **args):
    return run_module('longhorn_volume_info', host=fake_kube.HOST, **args)


def test_volumes_report_their_replicas_claims_and_nodes(run_module, cluster):
    result = info(run_module)
    assert not result.failed and not result.changed
    first = result['volumes'][0]
    assert (first['name'], first['claim'], first['state'], first['robustness'], first['size'], first['nodes']) == (
        'pvc-aaa', 'apps/data', 'attached', 'healthy', 1073741824, ['node-1', 'node-2'])
    assert first['replicas'] == [{'name': 'pvc-aaa-r-1', 'node': 'node-1', 'state': 'running', 'healthy': True},
                                 {'name': 'pvc-aaa-r-2', 'node': 'node-2', 'state': 'running', 'healthy': True}]
    assert [r['healthy'] for r in result['volumes'][1]['replicas']] == [True, False]


def test_the_node_holding_a_volumes_last_healthy_copy_and_degraded_volumes_are_named(run_module, cluster):
    result = info(run_module)
    assert result['volumes_only_on'] == {'node-3': ['pvc-bbb'], 'node-2': ['pvc-ccc']}
    assert result['degraded'] == ['pvc-bbb'] and result['without_healthy_replica'] == []


def test_a_volume_without_a_healthy_replica_is_named(run_module, cluster):
    cluster.put(replica('pvc-ccc-r-1', 'pvc-ccc', 'node-2', state='error'))
    result = info(run_module, volumes=['pvc-ccc'])
    assert [v['name'] for v in result['volumes']] == ['pvc-ccc']
    assert result['without_healthy_replica'] == ['pvc-ccc'] and result['degraded'] == ['pvc-ccc']
    assert result['volumes_only_on'] == {}


def test_without_longhorn_the_failure_says_so(run_module, monkeypatch):
    fake_kube.install(monkeypatch)
    result = info(run_module)
    assert result.failed
    assert result.msg.startswith('cannot list Longhorn Volumes in longhorn-system; is Longhorn installed?')
