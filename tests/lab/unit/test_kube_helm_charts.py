"""The pure parts of the lab's Helm and storage behaviour: the chart table, version selection, release targets,
and volume binding run in-process against the Kubernetes emulator's API object."""

import asyncio

import pytest

from castle_lab.kube.api.objects import KubeApi
from castle_lab.kube.controllers import charts, storage
from castle_lab.kube.controllers.flux import helm
from castle_lab.kube.controllers.manager import Manager
from castle_lab.kube.controllers.suite import all_controllers

OWNER = ('flux-system', 'metallb')


def test_full_name_follows_helms_convention():
    assert charts.full_name('metallb', 'metallb') == 'metallb'
    assert charts.full_name('lb', 'metallb') == 'lb-metallb'
    assert charts.full_name('metallb-system-metallb', 'metallb') == 'metallb-system-metallb'
    assert len(charts.full_name('x' * 70, 'longhorn')) == 63


@pytest.mark.parametrize('wanted, found', [
    ('0.15.2', '0.15.2'), ('v0.14.9', '0.14.9'), ('0.1.0', None), ('', '0.15.2'), ('*', '0.15.2'),
    ('>=0.13.0', '0.15.2')])
def test_version_selection(wanted, found):
    assert helm.resolve_version(wanted, charts.CHARTS['metallb']) == found


def test_metallb_renders_helm_labelled_workloads():
    objects = charts.render(charts.CHARTS['metallb'], '0.15.2', 'metallb', 'metallb-system', {}, OWNER)
    workloads = {(o['kind'], o['metadata']['name']): o for o in objects}
    assert set(workloads) == {('ServiceAccount', 'metallb'), ('Deployment', 'metallb-controller'),
                              ('DaemonSet', 'metallb-speaker')}
    controller = workloads[('Deployment', 'metallb-controller')]
    assert controller['metadata']['namespace'] == 'metallb-system'
    assert controller['metadata']['labels']['app.kubernetes.io/managed-by'] == 'Helm'
    assert controller['metadata']['labels']['helm.sh/chart'] == 'metallb-0.15.2'
    assert controller['metadata']['labels']['app.kubernetes.io/instance'] == 'metallb'
    assert controller['metadata']['annotations'] == {'meta.helm.sh/release-name': 'metallb',
                                                     'meta.helm.sh/release-namespace': 'metallb-system'}
    assert controller['spec']['template']['spec']['containers'][0]['image'] == 'quay.io/metallb/controller:v0.15.2'


def test_crds_follow_the_chart_switches():
    names = sorted(crd['metadata']['name'] for crd in charts.crds(charts.CHARTS['metallb'], {}))
    assert names == ['ipaddresspools.metallb.io', 'l2advertisements.metallb.io']
    assert not charts.crds(charts.CHARTS['metallb'], {'crds': {'enabled': False}})
    assert len(charts.crds(charts.CHARTS['external-secrets'], {'installCRDs': True})) == 4
    assert not charts.crds(charts.CHARTS['external-secrets'], {'installCRDs': False})
    longhorn = charts.crds(charts.CHARTS['longhorn'], {})
    assert 'volumes.longhorn.io' in {crd['metadata']['name'] for crd in longhorn}
    assert all(crd['spec']['versions'][0]['schema']['openAPIV3Schema']['x-kubernetes-preserve-unknown-fields']
               for crd in longhorn)


def test_longhorn_storage_class_from_values():
    def storage_class(values):
        objects = charts.render(charts.CHARTS['longhorn'], '1.10.1', 'longhorn', 'longhorn-system', values, OWNER)
        return next(o for o in objects if o['kind'] == 'StorageClass')

    default = storage_class({})
    assert default['provisioner'] == 'driver.longhorn.io' and 'namespace' not in default['metadata']
    assert default['metadata']['annotations']['storageclass.kubernetes.io/is-default-class'] == 'true'
    assert default['parameters']['numberOfReplicas'] == '3'
    tuned = storage_class({'persistence': {'defaultClass': False, 'defaultClassReplicaCount': 1}})
    assert tuned['metadata']['annotations']['storageclass.kubernetes.io/is-default-class'] == 'false'
    assert tuned['parameters']['numberOfReplicas'] == '1'


def test_release_target_and_crd_policy():
    def release(**spec):
        return {'metadata': {'name': 'metallb', 'namespace': 'flux-system'}, 'spec': spec}

    target = helm.HelmReleaseController.target
    assert target(release()) == ('metallb', 'flux-system', 'flux-system')
    assert target(release(targetNamespace='metallb-system')) == (
        'metallb-system-metallb', 'metallb-system', 'flux-system')
    assert target(release(targetNamespace='lb', releaseName='metallb', storageNamespace='lb')) == (
        'metallb', 'lb', 'lb')
    assert len(target(release(releaseName='r' * 60))[0]) <= 53
    assert helm.crd_policy(release(), 'install') == 'Create'
    assert helm.crd_policy(release(), 'upgrade') == 'Skip'
    assert helm.crd_policy(release(upgrade={'crds': 'CreateReplace'}), 'upgrade') == 'CreateReplace'
    assert helm.inventory_id({'apiVersion': 'apps/v1', 'kind': 'Deployment',
                              'metadata': {'name': 'web', 'namespace': 'lb'}}) == 'lb_web_apps_Deployment'
    assert helm.inventory_id({'apiVersion': 'v1', 'kind': 'ServiceAccount',
                              'metadata': {'name': 'web', 'namespace': 'lb'}}) == 'lb_web__ServiceAccount'


def test_the_newest_default_storage_class_wins():
    def storage_class(name, created, default):
        return {'metadata': {'name': name, 'creationTimestamp': created, 'annotations': {
            storage.DEFAULT_CLASS: 'true' if default else 'false'}}}

    classes = [storage_class('old', '2026-01-01T00:00:00Z', True), storage_class('new', '2026-02-01T00:00:00Z', True),
               storage_class('other', '2026-03-01T00:00:00Z', False)]
    assert storage.default_class(classes)['metadata']['name'] == 'new'
    assert storage.default_class(classes[2:]) is None


async def settle(check, timeout=5.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, 'not within {0}s'.format(timeout)
        await asyncio.sleep(0.01)


def claim_phase(api, namespace, name):
    return (api.store.get(storage.CLAIMS, namespace, name).get('status') or {}).get('phase')


def test_claims_bind_once_a_known_provisioner_serves_their_class():
    async def scenario():
        api = KubeApi()
        manager = Manager(api.store, all_controllers(api))
        manager.start()
        claims = api.registry.get('', 'v1', 'persistentvolumeclaims')
        classes = api.registry.get('storage.k8s.io', 'v1', 'storageclasses')
        pods = api.registry.get('', 'v1', 'pods')
        spec = {'accessModes': ['ReadWriteOnce'], 'resources': {'requests': {'storage': '1Gi'}}}
        api.create(claims, 'default', {'metadata': {'name': 'plain'}, 'spec': dict(spec)}, 'test')
        api.create(claims, 'default', {'metadata': {'name': 'nfs'}, 'spec': dict(spec, storageClassName='nfs')},
                   'test')
        api.create(claims, 'default', {'metadata': {'name': 'later'}, 'spec': dict(spec, storageClassName='lazy')},
                   'test')
        await settle(lambda: all(claim_phase(api, 'default', n) == 'Pending' for n in ('plain', 'nfs', 'later')))
        api.create(classes, None, {'metadata': {'name': 'nfs'}, 'provisioner': 'nfs.csi.k8s.io'}, 'test')
        api.create(classes, None, {'metadata': {'name': 'lazy'}, 'provisioner': storage.LONGHORN_PROVISIONER,
                                   'volumeBindingMode': 'WaitForFirstConsumer'}, 'test')
        api.create(classes, None, {'metadata': {'name': 'longhorn', 'annotations': {storage.DEFAULT_CLASS: 'true'}},
                                   'provisioner': storage.LONGHORN_PROVISIONER}, 'test')
        await settle(lambda: claim_phase(api, 'default', 'plain') == 'Bound')
        plain = api.store.get(storage.CLAIMS, 'default', 'plain')
        assert plain['spec']['storageClassName'] == 'longhorn'
        assert plain['status']['capacity'] == {'storage': '1Gi'}
        volume = api.store.get(storage.VOLUMES, None, plain['spec']['volumeName'])
        assert volume['spec']['claimRef']['uid'] == plain['metadata']['uid']
        assert claim_phase(api, 'default', 'nfs') == 'Pending'
        assert claim_phase(api, 'default', 'later') == 'Pending'
        api.create(pods, 'default', {'metadata': {'name': 'user'}, 'spec': {
            'containers': [{'name': 'c', 'image': 'busybox'}],
            'volumes': [{'name': 'data', 'persistentVolumeClaim': {'claimName': 'later'}}]}}, 'test')
        await settle(lambda: claim_phase(api, 'default', 'later') == 'Bound')
        api.delete(claims, 'default', 'plain')
        await settle(lambda: api.store.get(storage.VOLUMES, None, plain['spec']['volumeName']) is None)
        await manager.stop()

    asyncio.run(scenario())
