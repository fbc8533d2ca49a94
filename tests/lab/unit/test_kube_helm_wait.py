"""helm-controller's wait in the lab: a release is Ready once its workloads are; one whose pods never get Ready fails
after spec.timeout (on the controllers' clock, moved forward instead of waited for) with Helm's "context deadline
exceeded", stays failed until reset, and installs once the fault is gone and a reset is asked for."""

import asyncio

from castle_lab.kube import upstream_crds
from castle_lab.kube.api.objects import KubeApi
from castle_lab.kube.controllers.failures import Failures
from castle_lab.kube.controllers.manager import Manager
from castle_lab.kube.controllers.suite import all_controllers

FLUX = 'flux-system'
CRDS = ('helmrepositories.source.toolkit.fluxcd.io', 'helmcharts.source.toolkit.fluxcd.io',
        'helmreleases.helm.toolkit.fluxcd.io')
RELEASES = ('helm.toolkit.fluxcd.io', 'helmreleases')


class Clock:
    def __init__(self):
        self.now = 1_800_000_000.0

    def __call__(self):
        return self.now


async def settle(check, timeout=5.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, 'not within {0}s'.format(timeout)
        await asyncio.sleep(0.01)


def install_flux(api):
    api.create(api.registry.get('', 'v1', 'namespaces'), None, {'metadata': {'name': FLUX}}, 'test')
    crds = api.registry.get('apiextensions.k8s.io', 'v1', 'customresourcedefinitions')
    for name in CRDS:
        api.create(crds, None, upstream_crds.bundled_crd(name), 'test')


async def flux_running():
    """An API with every controller on a clock of its own, Flux's CRDs and controllers, and a HelmRepository."""
    api = KubeApi()
    failures = Failures(clock=Clock())
    manager = Manager(api.store, all_controllers(api, failures=failures))
    manager.start()
    install_flux(api)
    await settle(lambda: api.registry.get('helm.toolkit.fluxcd.io', 'v2', 'helmreleases') is not None)
    start_controllers(api)
    api.create(api.registry.get('source.toolkit.fluxcd.io', 'v1', 'helmrepositories'), FLUX, {
        'metadata': {'name': 'eso'}, 'spec': {'url': 'https://charts.external-secrets.io', 'interval': '1h'}}, 'test')
    return api, failures, manager


def start_controllers(api):
    deployments = api.registry.get('apps', 'v1', 'deployments')
    for name in ('source-controller', 'helm-controller'):
        labels = {'app': name}
        api.create(deployments, FLUX, {'metadata': {'name': name}, 'spec': {
            'replicas': 1, 'selector': {'matchLabels': labels}, 'template': {'metadata': {'labels': labels}, 'spec': {
                'containers': [{'name': 'manager', 'image': 'ghcr.io/fluxcd/' + name}]}}}}, 'test')


def ready(api, name='external-secrets'):
    release = api.store.get(RELEASES, FLUX, name) or {}
    found = next((c for c in (release.get('status') or {}).get('conditions') or [] if c['type'] == 'Ready'), None)
    return found and (found['status'], found['reason'], found['message'])


def conditions(api, name='external-secrets'):
    return {c['type']: c['status'] for c in api.store.get(RELEASES, FLUX, name)['status']['conditions']}


def test_a_release_whose_pods_never_get_ready_fails_after_its_timeout_and_installs_after_a_reset():
    async def scenario():
        api, failures, manager = await flux_running()
        failures.set_fault('external-secrets', 'Deployment', 'external-secrets', 'not-ready')
        api.create(api.registry.get('helm.toolkit.fluxcd.io', 'v2', 'helmreleases'), FLUX, {
            'metadata': {'name': 'external-secrets'}, 'spec': {
                'interval': '30m', 'releaseName': 'external-secrets', 'targetNamespace': 'external-secrets',
                'install': {'createNamespace': True}, 'timeout': '2m',
                'chart': {'spec': {'chart': 'external-secrets', 'version': '2.9.0',
                                   'sourceRef': {'kind': 'HelmRepository', 'name': 'eso'}}}}}, 'test')
        await settle(lambda: ready(api) and ready(api)[1] == 'Progressing')
        assert ready(api) == ('Unknown', 'Progressing', "Running 'install' action with timeout of 2m0s")
        history = api.store.get(RELEASES, FLUX, 'external-secrets')['status']['history']
        assert history[0]['status'] == 'pending-install'

        failures.advance(119)
        await asyncio.sleep(0.05)
        assert ready(api)[0] == 'Unknown'
        failures.advance(2)
        await settle(lambda: ready(api)[0] == 'False')
        assert ready(api) == ('False', 'InstallFailed', 'Helm install failed for release external-secrets/'
                              'external-secrets with chart external-secrets@2.9.0: context deadline exceeded')
        assert conditions(api)['Stalled'] == 'True'
        status = api.store.get(RELEASES, FLUX, 'external-secrets')['status']
        assert status['history'][0]['status'] == 'failed' and status['installFailures'] == 1
        secret = api.store.get(('', 'secrets'), FLUX, 'sh.helm.release.v1.external-secrets.v1')
        assert secret['metadata']['labels']['status'] == 'failed'

        # The fault goes: with no retries left the release stays failed until a reset is asked for.
        failures.set_fault('external-secrets', 'Deployment', 'external-secrets', None)
        await asyncio.sleep(0.05)
        assert ready(api)[1] == 'InstallFailed'
        releases = api.registry.get('helm.toolkit.fluxcd.io', 'v2', 'helmreleases')
        body = api.get(releases, FLUX, 'external-secrets')
        body['metadata'].setdefault('annotations', {}).update({
            'reconcile.fluxcd.io/requestedAt': 'now', 'reconcile.fluxcd.io/resetAt': 'now'})
        api.replace(releases, FLUX, 'external-secrets', body, 'flux')
        await settle(lambda: ready(api)[0] == 'True')
        assert ready(api)[1] == 'UpgradeSucceeded'
        assert 'Stalled' not in conditions(api)
        assert api.store.get(RELEASES, FLUX, 'external-secrets')['status']['lastHandledResetAt'] == 'now'
        await manager.stop()
    asyncio.run(scenario())


def test_a_release_of_ready_workloads_installs_without_waiting_for_the_timeout():
    async def scenario():
        api, failures, manager = await flux_running()
        api.create(api.registry.get('helm.toolkit.fluxcd.io', 'v2', 'helmreleases'), FLUX, {
            'metadata': {'name': 'external-secrets'}, 'spec': {
                'interval': '30m', 'targetNamespace': 'external-secrets', 'releaseName': 'external-secrets',
                'install': {'createNamespace': True},
                'chart': {'spec': {'chart': 'external-secrets', 'sourceRef': {'kind': 'HelmRepository',
                                                                              'name': 'eso'}}}}}, 'test')
        await settle(lambda: ready(api) and ready(api)[0] == 'True')
        assert ready(api)[1] == 'InstallSucceeded'
        status = api.store.get(RELEASES, FLUX, 'external-secrets')['status']
        assert status['history'][0]['status'] == 'deployed'
        await manager.stop()
    asyncio.run(scenario())
