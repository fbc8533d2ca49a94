"""Longhorn on Talos needs the siderolabs/iscsi-tools extension: longhorn-manager reports a node without iscsiadm
on its longhorn.io Node (RequiredPackages False, "Missing packages: [iscsiadm]"), and a Longhorn volume does not
attach there, so a pod using it stays Pending with a FailedAttachVolume event. Run in-process against the
Kubernetes emulator's API object; the Talos nodes' registration is checked with a recording Kubernetes API."""

import asyncio
from types import SimpleNamespace

from castle_lab.kube.api.objects import KubeApi
from castle_lab.kube.controllers import charts, longhorn, storage
from castle_lab.kube.controllers.manager import Manager
from castle_lab.kube.controllers.suite import all_controllers
from castle_lab.talos.cluster import Cluster

ALL = ['siderolabs/iscsi-tools', 'siderolabs/qemu-guest-agent', 'siderolabs/util-linux-tools']
NAMESPACE = 'longhorn-system'


async def settle(check, timeout=5.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, 'not within {0}s'.format(timeout)
        await asyncio.sleep(0.01)


def add_node(api, name, os_image, extensions=None):
    nodes = api.registry.get('', 'v1', 'nodes')
    meta = {'name': name}
    if extensions is not None:
        meta['annotations'] = {longhorn.EXTENSIONS_ANNOTATION: ','.join(extensions)}
    node = api.create(nodes, None, {'metadata': meta}, 'kubelet')
    api.replace(nodes, None, name, dict(node, status={'nodeInfo': {'osImage': os_image}}), 'kubelet',
                subresource='status')


def install_longhorn(api):
    api.create(api.registry.get('', 'v1', 'namespaces'), None, {'metadata': {'name': NAMESPACE}}, 'test')
    chart = charts.CHARTS['longhorn']
    crds = api.registry.get('apiextensions.k8s.io', 'v1', 'customresourcedefinitions')
    for crd in charts.crds(chart, {}):
        api.create(crds, None, crd, 'helm')
    for obj in charts.render(chart, '1.10.1', 'longhorn', NAMESPACE, {}, ('flux-system', 'longhorn')):
        group, _sep, version = obj['apiVersion'].rpartition('/')
        rtype = api.registry.by_kind(group, version, obj['kind'])
        api.create(rtype, obj['metadata'].get('namespace'), obj, 'helm')


def condition(api, name):
    node = api.store.get(longhorn.LONGHORN_NODES, NAMESPACE, name)
    conditions = ((node or {}).get('status') or {}).get('conditions') or []
    return next(({k: c[k] for k in ('status', 'reason', 'message')} for c in conditions
                 if c['type'] == 'RequiredPackages'), None)


def attach_events(api, pod):
    return [e for e in api.store.list(('', 'events'), 'default')
            if e['involvedObject']['name'] == pod and e['reason'] == 'FailedAttachVolume']


def test_longhorn_nodes_report_missing_iscsiadm_and_volumes_do_not_attach_there():
    async def scenario():
        api = KubeApi()
        manager = Manager(api.store, all_controllers(api))
        manager.start()
        add_node(api, 'worker-iscsi', 'Talos (v1.11.6)', ALL)
        add_node(api, 'worker-stock', 'Talos (v1.11.6)', [])
        install_longhorn(api)
        await settle(lambda: condition(api, 'worker-stock') is not None and condition(api, 'worker-iscsi'))
        assert condition(api, 'worker-stock') == {'status': 'False', 'reason': 'PackagesNotInstalled',
                                                  'message': 'Missing packages: [iscsiadm]'}
        assert condition(api, 'worker-iscsi')['status'] == 'True'
        # The seeded node's OS is none Longhorn knows: it checks nothing there.
        await settle(lambda: api.store.get(longhorn.LONGHORN_NODES, NAMESPACE, 'castle-lab-node') is not None)
        assert condition(api, 'castle-lab-node') is None

        claims = api.registry.get('', 'v1', 'persistentvolumeclaims')
        pods = api.registry.get('', 'v1', 'pods')
        for node in ('worker-iscsi', 'worker-stock'):
            api.create(claims, 'default', {'metadata': {'name': 'data-' + node}, 'spec': {
                'storageClassName': 'longhorn', 'accessModes': ['ReadWriteOnce'],
                'resources': {'requests': {'storage': '1Gi'}}}}, 'test')
            api.create(pods, 'default', {'metadata': {'name': 'app-' + node}, 'spec': {
                'nodeName': node, 'containers': [{'name': 'app', 'image': 'busybox'}],
                'volumes': [{'name': 'data', 'persistentVolumeClaim': {'claimName': 'data-' + node}}]}}, 'test')
        await settle(lambda: attach_events(api, 'app-worker-stock'))
        claim = api.store.get(storage.CLAIMS, 'default', 'data-worker-stock')
        assert claim['status']['phase'] == 'Bound'
        [event] = attach_events(api, 'app-worker-stock')
        assert event['type'] == 'Warning' and event['source'] == {'component': 'attachdetach-controller'}
        assert event['message'].startswith('AttachVolume.Attach failed for volume "{0}" : '.format(
            claim['spec']['volumeName']))
        assert 'Missing packages: [iscsiadm]' in event['message']
        pod = api.store.get(storage.PODS, 'default', 'app-worker-stock')
        assert pod['status']['phase'] == 'Pending'
        assert {c['type']: c['status'] for c in pod['status']['conditions']}['Ready'] == 'False'
        assert pod['status']['containerStatuses'][0]['state'] == {'waiting': {'reason': 'ContainerCreating'}}
        # The same on a node with iscsi-tools: bound, and nothing keeps the volume from attaching.
        assert api.store.get(storage.CLAIMS, 'default', 'data-worker-iscsi')['status']['phase'] == 'Bound'
        assert attach_events(api, 'app-worker-iscsi') == []
        assert (api.store.get(storage.PODS, 'default', 'app-worker-iscsi').get('status') or {}).get(
            'phase') != 'Pending'

        # A node that gets iscsi-tools (a new installer image) passes the check once its Node says so.
        nodes = api.registry.get('', 'v1', 'nodes')
        stock = api.served_as(nodes, api.store.get(('', 'nodes'), None, 'worker-stock'))
        stock['metadata']['annotations'][longhorn.EXTENSIONS_ANNOTATION] = ','.join(ALL)
        api.replace(nodes, None, 'worker-stock', stock, 'kubelet')
        await settle(lambda: condition(api, 'worker-stock')['status'] == 'True')
        await manager.stop()

    asyncio.run(scenario())


def test_a_talos_node_registers_with_the_extensions_it_runs():
    calls = []
    registered = {}

    async def kube_call(method, path, body=None):
        calls.append((method, path, body))
        if method == 'GET':
            return (200, registered) if registered else (404, {})
        return 200, {}

    cluster = Cluster(None, 'c1')
    cluster.kube_call = kube_call
    node = SimpleNamespace(hostname='w1', machine_type='worker', address='10.5.0.2', version='v1.11.6',
                           machine_id='m1', extensions=('sid', ['siderolabs/qemu-guest-agent']),
                           document={'machine': {'kubelet': {'image': 'ghcr.io/siderolabs/kubelet:v1.34.1'}}})
    asyncio.run(cluster._register(node))
    created = next(body for method, path, body in calls if method == 'POST')
    assert created['metadata']['annotations'] == {longhorn.EXTENSIONS_ANNOTATION: 'siderolabs/qemu-guest-agent'}
    # Booted again from an installer with iscsi-tools: the registered Node's annotation follows.
    registered.update(created)
    calls.clear()
    node.extensions = ('sid2', ['siderolabs/iscsi-tools', 'siderolabs/qemu-guest-agent'])
    asyncio.run(cluster._register(node))
    assert ('PATCH', '/api/v1/nodes/w1', {'metadata': {'annotations': {
        longhorn.EXTENSIONS_ANNOTATION: 'siderolabs/iscsi-tools,siderolabs/qemu-guest-agent'}}}) in calls
