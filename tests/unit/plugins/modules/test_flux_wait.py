"""flux_wait against a fake Kubernetes API: dependency order, readiness at the source's revision, the reconcile
request, check mode, and a timeout naming the root cause with the status of every object."""

import pytest

import fake_kube

KUSTOMIZE = 'kustomize.toolkit.fluxcd.io/v1'
SOURCE = 'source.toolkit.fluxcd.io/v1'


def kustomization(name, depends=(), ready=True, revision=fake_kube.REVISION, **status):
    return {'apiVersion': KUSTOMIZE, 'kind': 'Kustomization',
            'metadata': {'name': name, 'namespace': 'flux-system', 'generation': 1},
            'spec': {'dependsOn': [{'name': d} for d in depends],
                     'sourceRef': {'kind': 'GitRepository', 'name': 'flux-system'}},
            'status': dict({'observedGeneration': 1, 'lastAppliedRevision': revision, 'conditions': [
                {'type': 'Ready', 'status': 'True' if ready else 'False',
                 'reason': 'ReconciliationSucceeded' if ready else 'BuildFailed', 'message': 'about ' + name}]},
                **status)}


@pytest.fixture
def cluster(monkeypatch):
    fake = fake_kube.install(monkeypatch)
    fake.served[('helm.toolkit.fluxcd.io/v2', 'HelmRelease')] = True
    fake.put({'apiVersion': SOURCE, 'kind': 'GitRepository', 'metadata': {'name': 'flux-system', 'namespace': 'flux-system'},
              'status': {'artifact': {'revision': fake_kube.REVISION}}})
    for obj in (kustomization('apps', ['configs']), kustomization('configs', ['operators']), kustomization('operators')):
        fake.put(obj)
    return fake


def wait(run_module, check_mode=False, **args):
    return run_module('flux_wait', check_mode=check_mode, host=fake_kube.HOST, namespace='flux-system', **args)


def test_ready_objects_are_reported_in_dependency_order_without_a_change(run_module, cluster):
    result = wait(run_module)
    assert not result.failed and not result.changed
    assert [(o['name'], o['ready'], o['depends_on']) for o in result['objects']] == [
        ('operators', True, []), ('configs', True, ['flux-system/operators']), ('apps', True, ['flux-system/configs'])]


def test_a_timeout_names_the_first_object_not_ready_and_returns_every_status(run_module, cluster):
    cluster.put(kustomization('configs', ['operators'], ready=False))
    result = wait(run_module, wait_timeout=0)
    assert result.failed
    assert result.msg == 'timed out after 0s: Kustomization flux-system/configs is not Ready: BuildFailed: about configs'
    assert [o['ready'] for o in result['objects']] == [True, False, True]


def test_an_object_behind_its_sources_revision_is_waited_for(run_module, cluster):
    cluster.put(kustomization('apps', ['configs'], revision='main@sha1:old'))
    result = wait(run_module, timeout=0)
    assert result.failed
    assert result.msg == ('timed out after 0s: Kustomization flux-system/apps is not Ready: Progressing: '
                          'revision {0} not applied yet'.format(fake_kube.REVISION))


def test_reconcile_asks_flux_for_every_object_and_its_source_and_waits_until_handled(run_module, cluster):
    result = wait(run_module, kinds=['Kustomization'], reconcile=True)
    assert not result.failed and result.changed
    token = result['requested_at']
    assert sorted(key[1:] for manager, key in cluster.applied if manager == 'ephemeral.castle-reconcile') == [
        ('GitRepository', 'flux-system', 'flux-system'), ('Kustomization', 'flux-system', 'apps'),
        ('Kustomization', 'flux-system', 'configs'), ('Kustomization', 'flux-system', 'operators')]
    assert cluster.find(KUSTOMIZE, 'Kustomization', 'apps', 'flux-system')['status']['lastHandledReconcileAt'] == token


def test_check_mode_makes_no_request_and_reports_without_waiting(run_module, cluster):
    cluster.put(kustomization('configs', ['operators'], ready=False))
    result = wait(run_module, check_mode=True, reconcile=True, wait_timeout=60)
    assert not result.failed and not result.changed and 'requested_at' not in result
    assert cluster.applied == []
    assert [o['ready'] for o in result['objects']] == [True, False, True]


def test_names_select_and_suspended_objects_are_not_waited_for(run_module, cluster):
    suspended = kustomization('apps', ['configs'], ready=False)
    suspended['spec']['suspend'] = True
    cluster.put(suspended)
    result = wait(run_module, names=['apps'], wait_timeout=0)
    assert not result.failed
    assert [(o['name'], o['suspended']) for o in result['objects']] == [('apps', True)]


def test_a_negative_timeout_is_refused_naming_it(run_module, cluster):
    result = wait(run_module, wait_timeout=-1)
    assert result.failed and result.msg == 'wait_timeout must be 0 or more seconds, not -1'


def test_without_flux_the_error_says_so(run_module, monkeypatch):
    fake_kube.install(monkeypatch)
    result = wait(run_module)
    assert result.failed and result.msg.startswith('cannot list Kustomizations; is Flux installed?')


def release(name, ready='Unknown', reason='Progressing', message="Running 'install' action with timeout of 5m0s",
            stalled=False):
    conditions = [{'type': 'Ready', 'status': ready, 'reason': reason, 'message': message}]
    if stalled:
        conditions.append({'type': 'Stalled', 'status': 'True', 'reason': 'NoRemainingRetries',
                           'message': 'Attempted 0 times but failed'})
    return {'apiVersion': 'helm.toolkit.fluxcd.io/v2', 'kind': 'HelmRelease',
            'metadata': {'name': name, 'namespace': 'flux-system', 'generation': 1},
            'spec': {'chart': {'spec': {'chart': name}}},
            'status': {'observedGeneration': 1, 'conditions': conditions}}


def workload(name, namespace, ready, release_name, kind='Deployment'):
    labels = {'app': name}
    origin = {'helm.toolkit.fluxcd.io/name': release_name, 'helm.toolkit.fluxcd.io/namespace': 'flux-system'}
    return {'apiVersion': 'apps/v1', 'kind': kind, 'metadata': {
        'name': name, 'namespace': namespace, 'generation': 1, 'labels': origin},
        'spec': {'replicas': 1, 'selector': {'matchLabels': labels}},
        'status': {'observedGeneration': 1, 'replicas': 1, 'updatedReplicas': 1, 'readyReplicas': ready,
                   'conditions': [{'type': 'Available', 'status': 'True' if ready else 'False',
                                   'reason': 'MinimumReplicasAvailable' if ready else 'MinimumReplicasUnavailable',
                                   'message': 'Deployment does not have minimum availability.'}]}}


def pod(name, namespace, app, waiting=None):
    state = {'waiting': {'reason': waiting, 'message': 'Back-off pulling image "quay.io/metallb/controller:nope"'}} \
        if waiting else {'running': {}}
    return {'apiVersion': 'v1', 'kind': 'Pod', 'metadata': {'name': name, 'namespace': namespace,
                                                            'labels': {'app': app}},
            'status': {'phase': 'Pending' if waiting else 'Running', 'containerStatuses': [
                {'name': 'controller', 'ready': not waiting, 'state': state}],
                'conditions': [{'type': 'Ready', 'status': 'False' if waiting else 'True',
                                'reason': 'ContainersNotReady' if waiting else None}]}}


@pytest.fixture
def charts(cluster):
    cluster.put(release('metallb'))
    cluster.put(workload('metallb-controller', 'metallb-system', 0, 'metallb'))
    cluster.put(workload('other', 'metallb-system', 0, 'someone-else'))
    cluster.put(pod('metallb-controller-7d9f-abcde', 'metallb-system', 'metallb-controller', 'ImagePullBackOff'))
    return cluster


def test_a_timeout_on_a_helm_release_names_its_unready_deployment_and_the_pods_reason(run_module, charts):
    result = wait(run_module, kinds=['HelmRelease'], wait_timeout=0)
    assert result.failed
    assert result.msg == (
        "timed out after 0s: HelmRelease flux-system/metallb is not Ready: Progressing: Running 'install' action "
        "with timeout of 5m0s; Deployment metallb-system/metallb-controller: 0/1 ready, Available False: "
        "MinimumReplicasUnavailable: Deployment does not have minimum availability.; pod "
        "metallb-system/metallb-controller-7d9f-abcde: container controller waiting: ImagePullBackOff: Back-off "
        "pulling image \"quay.io/metallb/controller:nope\"")


def test_a_stalled_helm_release_fails_at_once_with_its_failure(run_module, charts):
    charts.put(release('metallb', 'False', 'InstallFailed', 'Helm install failed for release metallb-system/metallb '
                       'with chart metallb@0.15.2: context deadline exceeded', stalled=True))
    result = wait(run_module, kinds=['HelmRelease'], wait_timeout=5)
    assert result.failed
    assert result.msg.startswith(
        'HelmRelease flux-system/metallb is not Ready: InstallFailed: Helm install failed for release '
        'metallb-system/metallb with chart metallb@0.15.2: context deadline exceeded (stalled: ')
    assert 'Deployment metallb-system/metallb-controller: 0/1 ready' in result.msg
    assert [o['stalled'] for o in result['objects']] == [True]


def test_reconcile_resets_a_helm_release_with_the_same_token(run_module, charts):
    charts.stalled.add('HelmRelease')
    result = wait(run_module, kinds=['HelmRelease'], reconcile=True, wait_timeout=0)
    token = result['requested_at']
    annotations = charts.find('helm.toolkit.fluxcd.io/v2', 'HelmRelease', 'metallb', 'flux-system')['metadata'][
        'annotations']
    assert annotations == {'reconcile.fluxcd.io/requestedAt': token, 'reconcile.fluxcd.io/resetAt': token}
