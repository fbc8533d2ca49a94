"""Flux's Helm controllers in the lab's Kubernetes emulator: HelmRepository, HelmRelease, the charts the lab knows
(External Secrets, MetalLB, Longhorn) and volume provisioning, driven through kubectl and the kubernetes client."""

import base64

import pytest
import yaml
from kubernetes import client

from castle_lab.kube import upstream_crds
from kube_helpers import PRIVILEGED_NAMESPACE, get_object, holds, kubectl, scratch_namespace, wait_for

pytestmark = pytest.mark.lab

FLUX_CRDS = ('helmrepositories.source.toolkit.fluxcd.io', 'helmcharts.source.toolkit.fluxcd.io',
             'helmreleases.helm.toolkit.fluxcd.io')
CONTROLLERS = ('source-controller', 'helm-controller')


def apply(lab, kenv, *objects, check=True):
    return kubectl(lab, kenv, 'apply', '--server-side', '--field-manager=castle-test', '--force-conflicts', '-f', '-',
                   stdin=yaml.safe_dump_all(objects), check=check)


def controller_deployment(name):
    labels = {'app': name}
    return {'apiVersion': 'apps/v1', 'kind': 'Deployment', 'metadata': {'name': name, 'namespace': 'flux-system'},
            'spec': {'replicas': 1, 'selector': {'matchLabels': labels},
                     'template': {'metadata': {'labels': labels}, 'spec': {'containers': [
                         {'name': 'manager', 'image': 'ghcr.io/fluxcd/{0}:latest'.format(name)}]}}}}


@pytest.fixture(scope='module')
def flux_crds(lab, kenv):
    apply(lab, kenv, {'apiVersion': 'v1', 'kind': 'Namespace', 'metadata': {'name': 'flux-system'}},
          *[upstream_crds.bundled_crd(name) for name in FLUX_CRDS])
    kubectl(lab, kenv, 'wait', '--for=condition=Established', '--timeout=20s',
            *['crd/' + name for name in FLUX_CRDS])


@pytest.fixture(scope='module')
def flux(lab, kenv, flux_crds):
    apply(lab, kenv, *[controller_deployment(name) for name in CONTROLLERS])
    kubectl(lab, kenv, 'wait', '--for=condition=Available', '--timeout=20s', '-n', 'flux-system',
            *['deployment/' + name for name in CONTROLLERS])


@pytest.fixture
def namespace(core):
    """A namespace for releases of charts whose pods need host access (longhorn-manager, MetalLB's speaker)."""
    yield from scratch_namespace(core, 'kh', PRIVILEGED_NAMESPACE)


def repository(name, namespace, url='https://charts.example.org', kind='default'):
    spec = {'url': url, 'interval': '1h'}
    if kind != 'default':
        spec['type'] = kind
    return {'apiVersion': 'source.toolkit.fluxcd.io/v1', 'kind': 'HelmRepository',
            'metadata': {'name': name, 'namespace': namespace}, 'spec': spec}


def release(name, namespace, chart, repo, **spec):
    chart_spec = {'chart': chart, 'sourceRef': {'kind': 'HelmRepository', 'name': repo}}
    if 'version' in spec:
        chart_spec['version'] = spec.pop('version')
    return {'apiVersion': 'helm.toolkit.fluxcd.io/v2', 'kind': 'HelmRelease',
            'metadata': {'name': name, 'namespace': namespace},
            'spec': dict({'interval': '30m', 'chart': {'spec': chart_spec}}, **spec)}


def ready(obj):
    conditions = ((obj or {}).get('status') or {}).get('conditions') or []
    return next((c for c in conditions if c['type'] == 'Ready'), None)


def wait_ready(dyn, api_version, kind, namespace, name, status='True', reason=None):
    def check():
        obj = get_object(dyn, api_version, kind, namespace, name)
        cond = ready(obj)
        if cond and cond['status'] == status and (reason is None or cond['reason'] == reason) \
                and obj['status'].get('observedGeneration') == obj['metadata']['generation']:
            return obj
        return None
    return wait_for(check, '{0} {1}/{2} Ready={3} {4}'.format(kind, namespace, name, status, reason or ''), 15.0)


def bound_claim(claim):
    return claim if claim.status.phase == 'Bound' else None


def helm_release(dyn, namespace, name, **kwargs):
    return wait_ready(dyn, 'helm.toolkit.fluxcd.io/v2', 'HelmRelease', namespace, name, **kwargs)


def test_pending_objects_are_reconciled_once_the_controllers_run(lab, kenv, dyn, flux_crds, namespace):
    kubectl(lab, kenv, 'delete', '-n', 'flux-system', '--ignore-not-found', '--wait=true',
            *['deployment/' + name for name in CONTROLLERS])
    apply(lab, kenv, repository('charts', namespace), release('lb', namespace, 'metallb', 'charts'))
    untouched = {'observedGeneration': -1}  # the CRDs' default status
    holds(lambda: get_object(dyn, 'source.toolkit.fluxcd.io/v1', 'HelmRepository', namespace, 'charts')['status'] == untouched
          and get_object(dyn, 'helm.toolkit.fluxcd.io/v2', 'HelmRelease', namespace, 'lb')['status'] == untouched,
          'nothing reconciles Flux objects before Flux runs')
    apply(lab, kenv, *[controller_deployment(name) for name in CONTROLLERS])
    repo = wait_ready(dyn, 'source.toolkit.fluxcd.io/v1', 'HelmRepository', namespace, 'charts', reason='Succeeded')
    revision = repo['status']['artifact']['revision']
    assert revision.startswith('sha256:') and ready(repo)['message'] == "stored artifact: revision '{0}'".format(
        revision)
    assert repo['status']['artifact']['url'].startswith('http://source-controller.flux-system.svc.cluster.local./')
    helm_release(dyn, namespace, 'lb', reason='InstallSucceeded')
    kubectl(lab, kenv, 'delete', '-n', namespace, 'helmrelease/lb', '--timeout=20s')


def test_metallb_install_serves_its_crds_and_upgrades(lab, kenv, dyn, core, flux, namespace):
    # The target namespace exists already, labelled for the speaker (createNamespace keeps it as it is).
    core.create_namespace({'metadata': {'name': namespace + '-lb', 'labels': PRIVILEGED_NAMESPACE}})
    apply(lab, kenv, repository('metallb', namespace, 'https://metallb.github.io/metallb'),
          release('metallb', namespace, 'metallb', 'metallb', version='0.13.12', releaseName='metallb',
                  targetNamespace=namespace + '-lb', install={'createNamespace': True}))
    target = namespace + '-lb'
    hr = helm_release(dyn, namespace, 'metallb', reason='InstallSucceeded')
    message = 'Helm install succeeded for release {0}/metallb.v1 with chart metallb@0.13.12'.format(target)
    assert ready(hr)['message'] == message
    released = next(c for c in hr['status']['conditions'] if c['type'] == 'Released')
    assert (released['status'], released['reason'], released['message']) == ('True', 'InstallSucceeded', message)
    status = hr['status']
    assert status['helmChart'] == '{0}/{0}-metallb'.format(namespace)
    assert status['lastAttemptedRevision'] == '0.13.12' and status['storageNamespace'] == namespace
    assert [(h['version'], h['status'], h['chartName']) for h in status['history']] == [(1, 'deployed', 'metallb')]
    assert 'finalizers.fluxcd.io' in hr['metadata']['finalizers']
    secret = core.read_namespaced_secret('sh.helm.release.v1.metallb.v1', namespace)
    assert secret.type == 'helm.sh/release.v1'
    assert {k: secret.metadata.labels[k] for k in ('owner', 'name', 'status', 'version')} == {
        'owner': 'helm', 'name': 'metallb', 'status': 'deployed', 'version': '1'}
    assert base64.b64decode(secret.data['release'])
    controller = client.AppsV1Api(core.api_client).read_namespaced_deployment('metallb-controller', target)
    assert controller.metadata.labels['app.kubernetes.io/managed-by'] == 'Helm'
    assert controller.metadata.labels['helm.sh/chart'] == 'metallb-0.13.12'
    assert controller.metadata.annotations['meta.helm.sh/release-name'] == 'metallb'
    client.AppsV1Api(core.api_client).read_namespaced_daemon_set('metallb-speaker', target)

    assert 'No resources found' in kubectl(lab, kenv, 'get', 'ipaddresspools', '-n', target).stderr
    pool = {'apiVersion': 'metallb.io/v1beta1', 'kind': 'IPAddressPool',
            'metadata': {'name': 'lab', 'namespace': target}, 'spec': {'addresses': ['10.0.50.0/28']}}
    apply(lab, kenv, pool, {'apiVersion': 'metallb.io/v1beta1', 'kind': 'L2Advertisement',
                            'metadata': {'name': 'lab', 'namespace': target}, 'spec': {'ipAddressPools': ['lab']}})
    assert 'lab' in kubectl(lab, kenv, 'get', 'ipaddresspools', '-n', target).stdout
    invalid = dict(pool, metadata={'name': 'broken', 'namespace': target}, spec={'autoAssign': 'yes'})
    refused = apply(lab, kenv, invalid, check=False)
    assert refused.returncode != 0
    assert 'spec.addresses: Required value' in refused.stderr and 'spec.autoAssign' in refused.stderr

    kubectl(lab, kenv, 'patch', '-n', namespace, 'helmrelease/metallb', '--type=merge',
            '-p', '{"spec": {"values": {"speaker": {"logLevel": "debug"}}}}')
    hr = helm_release(dyn, namespace, 'metallb', reason='UpgradeSucceeded')
    assert ready(hr)['message'] == message.replace('install', 'upgrade').replace('.v1', '.v2')
    assert [h['version'] for h in hr['status']['history']] == [2, 1]
    assert core.read_namespaced_secret('sh.helm.release.v1.metallb.v1', namespace).metadata.labels[
        'status'] == 'superseded'

    kubectl(lab, kenv, 'delete', '-n', namespace, 'helmrelease/metallb', '--timeout=20s')
    assert get_object(dyn, 'apps/v1', 'Deployment', target, 'metallb-controller') is None
    assert get_object(dyn, 'apps/v1', 'DaemonSet', target, 'metallb-speaker') is None
    assert not core.list_namespaced_secret(namespace, label_selector='owner=helm').items
    assert get_object(dyn, 'source.toolkit.fluxcd.io/v1', 'HelmChart', namespace, namespace + '-metallb') is None
    kubectl(lab, kenv, 'get', 'crd', 'ipaddresspools.metallb.io')  # Helm keeps CRDs
    core.delete_namespace(target)


def test_an_unknown_chart_or_missing_source_is_not_ready(lab, kenv, dyn, flux, namespace):
    apply(lab, kenv, repository('charts', namespace),
          release('nosuch', namespace, 'nosuch', 'charts'),
          release('old', namespace, 'metallb', 'charts', version='0.1.0'),
          release('orphan', namespace, 'metallb', 'absent'))

    def release_says(name, ending):
        # The release first sees its new HelmChart without status, then the chart's own failure.
        wait_for(lambda: ready(helm_release(dyn, namespace, name, status='False', reason='HelmChartNotReady'))[
            'message'].endswith(ending), 'release {0} reports its chart: {1}'.format(name, ending), 15.0)

    release_says('nosuch', "HelmChart '{0}/{0}-nosuch' is not ready: invalid chart reference: failed to get chart "
                 "version for remote reference: no 'nosuch' chart with version matching '*' found".format(namespace))
    chart = wait_ready(dyn, 'source.toolkit.fluxcd.io/v1', 'HelmChart', namespace, namespace + '-nosuch',
                       status='False', reason='ChartPullError')
    assert chart['spec']['sourceRef'] == {'kind': 'HelmRepository', 'name': 'charts'}
    release_says('old', "no 'metallb' chart with version matching '0.1.0' found")
    release_says('orphan', 'failed to get source: HelmRepository.source.toolkit.fluxcd.io "absent" not found')


def test_dependencies_hold_a_release_back(lab, kenv, dyn, flux, namespace):
    apply(lab, kenv, repository('charts', namespace),
          release('eso', namespace, 'external-secrets', 'charts', dependsOn=[{'name': 'first'}]))
    hr = helm_release(dyn, namespace, 'eso', status='False', reason='DependencyNotReady')
    assert ready(hr)['message'] == ("unable to get '{0}/first' dependency: helmreleases.helm.toolkit.fluxcd.io "
                                    "\"first\" not found".format(namespace))
    apply(lab, kenv, release('first', namespace, 'nosuch', 'charts'))
    wait_for(lambda: ready(get_object(dyn, 'helm.toolkit.fluxcd.io/v2', 'HelmRelease', namespace, 'eso'))['message'] ==
             "dependency '{0}/first' is not ready".format(namespace), 'dependency not ready')
    apply(lab, kenv, release('first', namespace, 'metallb', 'charts'))
    helm_release(dyn, namespace, 'first', reason='InstallSucceeded')
    hr = helm_release(dyn, namespace, 'eso', reason='InstallSucceeded')
    assert hr['status']['history'][0]['chartVersion'] == '2.9.0'
    kubectl(lab, kenv, 'get', 'crd', 'externalsecrets.external-secrets.io', 'clustersecretstores.external-secrets.io')
    kubectl(lab, kenv, 'get', 'deployment', '-n', namespace, 'eso-external-secrets', 'eso-external-secrets-webhook')
    kubectl(lab, kenv, 'annotate', '-n', namespace, 'helmrelease/eso', 'reconcile.fluxcd.io/requestedAt=now-1')
    wait_for(lambda: get_object(dyn, 'helm.toolkit.fluxcd.io/v2', 'HelmRelease', namespace, 'eso')['status'].get(
        'lastHandledReconcileAt') == 'now-1', 'lastHandledReconcileAt')
    kubectl(lab, kenv, 'patch', '-n', namespace, 'helmrelease/eso', '--type=merge', '-p',
            '{"spec": {"releaseName": "secrets"}}')
    hr = helm_release(dyn, namespace, 'eso', reason='InstallSucceeded')
    assert [(h['name'], h['version']) for h in hr['status']['history']] == [('secrets', 1)]
    assert get_object(dyn, 'apps/v1', 'Deployment', namespace, 'eso-external-secrets') is None
    assert get_object(dyn, 'apps/v1', 'Deployment', namespace, 'secrets-external-secrets')
    kubectl(lab, kenv, 'delete', '-n', namespace, 'helmrelease/eso', 'helmrelease/first', '--timeout=20s')


def test_suspended_and_oci_sources(lab, kenv, dyn, flux, namespace):
    suspended = repository('paused', namespace)
    suspended['spec']['suspend'] = True
    apply(lab, kenv, suspended, repository('oci', namespace, 'oci://ghcr.io/example/charts', kind='oci'),
          release('from-oci', namespace, 'longhorn', 'oci', suspend=False, targetNamespace=namespace,
                  values={'persistence': {'defaultClass': False}}))
    hr = helm_release(dyn, namespace, 'from-oci', reason='InstallSucceeded')
    assert hr['status']['history'][0]['name'] == '{0}-from-oci'.format(namespace)
    # Neither is reconciled: each keeps the status its CRD defaults, no conditions, no artifact.
    for name in ('oci', 'paused'):
        assert get_object(dyn, 'source.toolkit.fluxcd.io/v1', 'HelmRepository', namespace, name).get('status') == {
            'observedGeneration': -1}
    kubectl(lab, kenv, 'delete', '-n', namespace, 'helmrelease/from-oci', '--timeout=20s')


def test_longhorn_storage_class_binds_claims(lab, kenv, dyn, core, flux, namespace):
    def claim(name, storage_class=None):
        spec = {'accessModes': ['ReadWriteOnce'], 'resources': {'requests': {'storage': '5Gi'}}}
        if storage_class is not None:
            spec['storageClassName'] = storage_class
        return {'apiVersion': 'v1', 'kind': 'PersistentVolumeClaim',
                'metadata': {'name': name, 'namespace': namespace}, 'spec': spec}

    apply(lab, kenv, claim('early', 'longhorn'), claim('elsewhere', 'nosuch'))
    for name in ('early', 'elsewhere'):
        wait_for(lambda n=name: (core.read_namespaced_persistent_volume_claim(n, namespace).status.phase == 'Pending'),
                 'claim {0} pending'.format(name))
    apply(lab, kenv, repository('longhorn', namespace, 'https://charts.longhorn.io'),
          release('longhorn', namespace, 'longhorn', 'longhorn', releaseName='longhorn',
                  values={'persistence': {'defaultClassReplicaCount': 1}}))
    helm_release(dyn, namespace, 'longhorn', reason='InstallSucceeded')
    storage_class = client.StorageV1Api(core.api_client).read_storage_class('longhorn')
    assert storage_class.provisioner == 'driver.longhorn.io'
    assert storage_class.metadata.annotations['storageclass.kubernetes.io/is-default-class'] == 'true'
    assert storage_class.parameters['numberOfReplicas'] == '1'
    kubectl(lab, kenv, 'get', 'volumes.longhorn.io', '-n', namespace)
    kubectl(lab, kenv, 'get', 'daemonset/longhorn-manager', 'deployment/longhorn-driver-deployer', '-n', namespace)

    apply(lab, kenv, claim('defaulted'))
    for name in ('early', 'defaulted'):
        bound = wait_for(lambda n=name: bound_claim(core.read_namespaced_persistent_volume_claim(n, namespace)),
                         'claim {0} bound'.format(name))
        assert bound.spec.storage_class_name == 'longhorn'
        assert bound.status.capacity == {'storage': '5Gi'} and bound.status.access_modes == ['ReadWriteOnce']
        volume = core.read_persistent_volume(bound.spec.volume_name)
        assert volume.spec.claim_ref.name == name and volume.spec.csi.driver == 'driver.longhorn.io'
        assert volume.status.phase == 'Bound'
    assert core.read_namespaced_persistent_volume_claim('elsewhere', namespace).status.phase == 'Pending'

    kubectl(lab, kenv, 'delete', '-n', namespace, 'helmrelease/longhorn', '--timeout=20s')
    wait_for(lambda: get_object(dyn, 'storage.k8s.io/v1', 'StorageClass', None, 'longhorn') is None, 'class removed')
