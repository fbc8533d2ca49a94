"""Longhorn volumes with real bytes in the Kubernetes emulator: a Volume per provisioned PersistentVolume, one replica
per node with its data on that node's disk, robustness from the usable replicas (healthy and degraded only while
attached, faulted when none is left), lost replicas rebuilt from a usable one at once when their data is gone and
after replica-replenishment-wait-interval when they may come back. In-process against the emulator's API object."""

import asyncio
import shutil

from castle_lab.kube.api.objects import KubeApi
from castle_lab.kube.controllers import charts, longhorn_volumes
from castle_lab.kube.controllers.failures import Failures
from castle_lab.kube.controllers.manager import Manager
from castle_lab.kube.controllers.suite import all_controllers

NAMESPACE = 'longhorn-system'
NODES = ('node-a', 'node-b', 'node-c', 'node-d')


async def settle(check, timeout=8.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, 'not within {0}s'.format(timeout)
        await asyncio.sleep(0.02)


def add_node(api, name):
    nodes = api.registry.get('', 'v1', 'nodes')
    node = api.create(nodes, None, {'metadata': {'name': name}}, 'kubelet')
    api.replace(nodes, None, name, dict(node, status={
        'nodeInfo': {'osImage': 'Debian GNU/Linux 13'},
        'conditions': [{'type': 'Ready', 'status': 'True', 'reason': 'KubeletReady'}]}), 'kubelet',
        subresource='status')


def install_longhorn(api, values=None):
    api.create(api.registry.get('', 'v1', 'namespaces'), None, {'metadata': {'name': NAMESPACE}}, 'test')
    chart = charts.CHARTS['longhorn']
    crds = api.registry.get('apiextensions.k8s.io', 'v1', 'customresourcedefinitions')
    for crd in charts.crds(chart, {}):
        api.create(crds, None, crd, 'helm')
    for obj in charts.render(chart, '1.10.1', 'longhorn', NAMESPACE, values or {}, ('flux-system', 'longhorn')):
        group, _sep, version = obj['apiVersion'].rpartition('/')
        api.create(api.registry.by_kind(group, version, obj['kind']), obj['metadata'].get('namespace'), obj, 'helm')


def claim(api, name, replicas):
    classes = api.registry.get('storage.k8s.io', 'v1', 'storageclasses')
    class_name = 'longhorn-{0}'.format(replicas)
    if api.store.get(('storage.k8s.io', 'storageclasses'), None, class_name) is None:
        api.create(classes, None, {'metadata': {'name': class_name}, 'provisioner': 'driver.longhorn.io',
                                   'parameters': {'numberOfReplicas': str(replicas), 'staleReplicaTimeout': '30'}},
                   'test')
    api.create(api.registry.get('', 'v1', 'persistentvolumeclaims'), 'default', {
        'metadata': {'name': name}, 'spec': {'storageClassName': class_name, 'accessModes': ['ReadWriteOnce'],
                                             'resources': {'requests': {'storage': '1Mi'}}}}, 'test')


def use(api, claim_name, node):
    api.create(api.registry.get('', 'v1', 'pods'), 'default', {
        'metadata': {'name': 'uses-' + claim_name}, 'spec': {
            'nodeName': node, 'containers': [{'name': 'app', 'image': 'busybox'}],
            'volumes': [{'name': 'data', 'persistentVolumeClaim': {'claimName': claim_name}}]}}, 'test')


def volume_of(api, claim_name):
    found = longhorn_volumes.claim_volume(api, 'default', claim_name)[2]
    return api.store.get(longhorn_volumes.LH_VOLUMES, NAMESPACE, found) if found else None


def status(api, claim_name):
    return (volume_of(api, claim_name) or {}).get('status') or {}


def replicas(api, claim_name):
    volume = volume_of(api, claim_name)
    return [r for r in api.store.list(longhorn_volumes.REPLICAS, NAMESPACE)
            if volume and r['spec']['volumeName'] == volume['metadata']['name']]


def image(storage, replica):
    return storage / 'nodes' / replica['spec']['nodeID'] / 'replicas' / replica['metadata']['name'] / 'volume.img'


async def reconciled(manager):
    """Every Longhorn volume reconciled once more after now."""
    controller = next(c for c in manager.controllers if isinstance(c, longhorn_volumes.VolumeController))
    controller.enqueue_all()
    await settle(controller.queue.empty)


def start(tmp_path, failures):
    api = KubeApi()
    manager = Manager(api.store, all_controllers(api, failures=failures, storage_dir=str(tmp_path)))
    manager.start()
    for node in NODES:
        add_node(api, node)
    install_longhorn(api)
    return api, manager


async def attached_volume(api, name, count, node=None):
    """A claim of `count` replicas, used by a pod (on `node`, else on its first replica's node) until healthy;
    returns its replicas' nodes, sorted."""
    claim(api, name, count)
    await settle(lambda: len(replicas(api, name)) == count)
    placed = sorted(r['spec']['nodeID'] for r in replicas(api, name))
    use(api, name, node(placed) if node else placed[0])
    await settle(lambda: status(api, name).get('robustness') == 'healthy')
    return placed


def test_volume_replicas_spread_with_bytes_and_rebuilt_when_a_disk_is_wiped(tmp_path):
    async def scenario():
        failures = Failures()
        api, manager = start(tmp_path, failures)
        claim(api, 'data', 3)
        await settle(lambda: len(replicas(api, 'data')) == 3)
        placed = sorted(r['spec']['nodeID'] for r in replicas(api, 'data'))
        assert len(set(placed)) == 3, placed
        volume = volume_of(api, 'data')
        assert volume['spec']['size'] == str(1024 * 1024) and volume['spec']['numberOfReplicas'] == 3
        # Detached: no health to tell yet.
        await settle(lambda: status(api, 'data').get('state') == 'detached')
        assert status(api, 'data')['robustness'] == 'unknown'
        for replica in replicas(api, 'data'):
            image(tmp_path, replica).write_bytes(b'payload')
        use(api, 'data', placed[0])
        await settle(lambda: status(api, 'data').get('robustness') == 'healthy')
        assert status(api, 'data')['currentNodeID'] == placed[0]
        assert {r['status']['currentState'] for r in replicas(api, 'data')} == {'running'}

        # A Talos reset wipes a node's disk: its replica cannot come back, a new one is built at once elsewhere.
        lost = next(r for r in replicas(api, 'data') if r['spec']['nodeID'] == placed[1])
        shutil.rmtree(tmp_path / 'nodes' / placed[1])
        await settle(lambda: any(r['spec']['nodeID'] not in placed for r in replicas(api, 'data')
                                 if not r['spec']['failedAt']))
        rebuilt = next(r for r in replicas(api, 'data') if r['spec']['nodeID'] not in placed)
        assert image(tmp_path, rebuilt).read_bytes() == b'payload'
        await settle(lambda: status(api, 'data').get('robustness') == 'healthy')
        failed = api.store.get(longhorn_volumes.REPLICAS, NAMESPACE, lost['metadata']['name'])
        assert failed['spec']['failedAt'] and failed['status']['currentState'] == 'error'
        await manager.stop()

    asyncio.run(scenario())


def test_a_node_that_may_come_back_is_waited_for_then_replaced(tmp_path):
    async def scenario():
        failures = Failures()
        api, manager = start(tmp_path, failures)
        _first, second = await attached_volume(api, 'wait', 2)
        failures.set_node_ready(second, False)
        await settle(lambda: status(api, 'wait').get('robustness') == 'degraded')
        # Within replica-replenishment-wait-interval (600 s by default) nothing is rebuilt.
        failures.advance(590)
        await reconciled(manager)
        assert len(replicas(api, 'wait')) == 2
        failures.advance(11)
        await settle(lambda: status(api, 'wait').get('robustness') == 'healthy')
        assert len([r for r in replicas(api, 'wait') if not r['spec']['failedAt']]) == 2
        await manager.stop()

    asyncio.run(scenario())


def test_the_only_replica_lost_faults_the_volume_and_its_return_heals_it(tmp_path):
    async def scenario():
        failures = Failures()
        api, manager = start(tmp_path, failures)
        # The pod runs on another node than the replica's.
        [only] = await attached_volume(api, 'single', 1, lambda placed: next(n for n in NODES if n not in placed))
        failures.set_node_ready(only, False)
        await settle(lambda: status(api, 'single').get('robustness') == 'faulted')
        assert replicas(api, 'single')[0]['status']['currentState'] == 'error'
        # No usable replica to copy from: nothing is rebuilt, however long it waits.
        failures.advance(3600)
        await reconciled(manager)
        assert [r['spec']['nodeID'] for r in replicas(api, 'single')] == [only]
        failures.set_node_ready(only, True)
        await settle(lambda: status(api, 'single').get('robustness') == 'healthy')
        await manager.stop()

    asyncio.run(scenario())


def test_a_deleted_claim_takes_its_volume_replicas_and_data(tmp_path):
    async def scenario():
        api, manager = start(tmp_path, Failures())
        claim(api, 'gone', 2)
        await settle(lambda: len(replicas(api, 'gone')) == 2)
        dirs = [image(tmp_path, r).parent for r in replicas(api, 'gone')]
        assert all(d.exists() for d in dirs)
        api.delete(api.registry.get('', 'v1', 'persistentvolumeclaims'), 'default', 'gone')
        await settle(lambda: not api.store.list(longhorn_volumes.REPLICAS, NAMESPACE))
        assert not any(d.exists() for d in dirs)
        assert not api.store.list(longhorn_volumes.LH_VOLUMES, NAMESPACE)
        await manager.stop()

    asyncio.run(scenario())
