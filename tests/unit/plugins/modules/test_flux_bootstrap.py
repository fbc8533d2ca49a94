"""flux_bootstrap against a fake Kubernetes API: install from a pinned manifest, the sync objects, waits,
check mode, diff with secrets hidden, idempotence, and errors naming the bad input."""

import pytest
import yaml

import fake_kube

FLUX = 'v2.9.1'
MANIFEST = [
    {'apiVersion': 'v1', 'kind': 'Namespace',
     'metadata': {'name': 'flux-system', 'labels': {'app.kubernetes.io/version': FLUX}}},
    {'apiVersion': 'apiextensions.k8s.io/v1', 'kind': 'CustomResourceDefinition',
     'metadata': {'name': 'gitrepositories.source.toolkit.fluxcd.io'},
     'spec': {'group': 'source.toolkit.fluxcd.io', 'names': {'kind': 'GitRepository'}, 'scope': 'Namespaced',
              'versions': [{'name': 'v1', 'served': True, 'storage': True}]}},
    {'apiVersion': 'apiextensions.k8s.io/v1', 'kind': 'CustomResourceDefinition',
     'metadata': {'name': 'kustomizations.kustomize.toolkit.fluxcd.io'},
     'spec': {'group': 'kustomize.toolkit.fluxcd.io', 'names': {'kind': 'Kustomization'}, 'scope': 'Namespaced',
              'versions': [{'name': 'v1', 'served': True, 'storage': True}]}},
    {'apiVersion': 'apps/v1', 'kind': 'Deployment', 'metadata': {'name': 'source-controller', 'namespace': 'flux-system'},
     'spec': {'replicas': 1}},
]
GIT = dict(git_url='https://git.test/ops/gitops.git', git_path='./clusters/lab', git_auth='token', git_token='t0ken')


@pytest.fixture
def cluster(monkeypatch):
    return fake_kube.install(monkeypatch)


@pytest.fixture
def manifest(tmp_path):
    path = tmp_path / 'install.yaml'
    path.write_text(yaml.safe_dump_all(MANIFEST))
    return str(path)


def flux_installed(cluster):
    cluster.served.update({('source.toolkit.fluxcd.io/v1', 'GitRepository'): True,
                           ('kustomize.toolkit.fluxcd.io/v1', 'Kustomization'): True})


def bootstrap(run_module, check_mode=False, diff=False, **args):
    return run_module('flux_bootstrap', check_mode=check_mode, diff=diff, host=fake_kube.HOST, **args)


def test_install_and_handover_then_a_rerun_changes_nothing(run_module, cluster, manifest):
    result = bootstrap(run_module, manifest_path=manifest, version=FLUX, cluster_vars={'cluster_name': 'lab'}, **GIT)
    assert not result.failed, result.msg
    assert result.changed and result['version'] == FLUX and result['revision'] == fake_kube.REVISION
    assert [o['ref'] for o in result['objects']][:3] == [
        'CustomResourceDefinition/gitrepositories.source.toolkit.fluxcd.io',
        'CustomResourceDefinition/kustomizations.kustomize.toolkit.fluxcd.io', 'Namespace/flux-system']
    assert {o['action'] for o in result['objects']} == {'created'}
    root = cluster.find('kustomize.toolkit.fluxcd.io/v1', 'Kustomization', 'flux-system', 'flux-system')
    assert root['spec']['path'] == './clusters/lab'
    assert root['spec']['postBuild']['substituteFrom'][0] == {'kind': 'ConfigMap', 'name': 'cluster-vars'}
    assert cluster.find('v1', 'ConfigMap', 'cluster-vars', 'flux-system')['data'] == {'cluster_name': 'lab'}
    again = bootstrap(run_module, manifest_path=manifest, version=FLUX, cluster_vars={'cluster_name': 'lab'},
                      **{**GIT, 'git_token': None})
    assert not again.failed and not again.changed, again
    assert {o['action'] for o in again['objects']} == {'unchanged'}


def test_check_mode_reports_creations_and_writes_nothing(run_module, cluster, manifest):
    result = bootstrap(run_module, check_mode=True, manifest_path=manifest, version=FLUX, **GIT)
    assert result.changed and 'revision' not in result
    assert {o['action'] for o in result['objects']} == {'created'}
    assert cluster.objects == {} and cluster.applied == []


def test_the_diff_shows_a_changed_variable_and_hides_secret_values(run_module, cluster):
    bootstrap(run_module, cluster_vars={'domain': 'old.test'}, cluster_secrets={'token': 'first'}, wait=False)
    result = bootstrap(run_module, diff=True, cluster_vars={'domain': 'new.test'}, cluster_secrets={'token': 'second'},
                       wait=False)
    assert result.changed
    before, after = result['diff']['before'], result['diff']['after']
    assert before['ConfigMap/flux-system/cluster-vars']['data'] == {'domain': 'old.test'}
    assert after['ConfigMap/flux-system/cluster-vars']['data'] == {'domain': 'new.test'}
    hidden = after['Secret/flux-system/cluster-secrets']['data']['token']
    assert hidden.startswith('<hidden>') and 'second' not in str(result) and 'c2Vjb25k' not in str(result)
    assert hidden != before['Secret/flux-system/cluster-secrets']['data']['token']


def test_a_wait_that_runs_out_names_what_is_not_ready_and_returns_what_was_applied(run_module, cluster, manifest):
    cluster.stalled = {'Deployment'}
    result = bootstrap(run_module, manifest_path=manifest, version=FLUX, wait_timeout=0, **GIT)
    assert result.failed
    assert result.msg == 'timed out after 0s: Deployment/flux-system/source-controller is not Ready: no Ready condition yet'
    assert result['version'] == FLUX and len(result['objects']) == 7 and result.changed


@pytest.mark.parametrize('args, message', [
    ({'manifest_path': 'MANIFEST', 'version': 'v2.8.0'}, 'install.yaml installs Flux v2.9.1, not the pinned version v2.8.0'),
    ({'manifest_path': '/nonexistent/install.yaml', 'version': FLUX}, 'manifest_path /nonexistent/install.yaml: '),
    ({'manifest_path': 'MANIFEST'}, 'missing parameter(s) required by \'manifest_path\': version'),
    ({'git_url': 'git@git.test:ops/gitops.git'}, "git_url 'git@git.test:ops/gitops.git' must start with https://"),
    ({'git_url': 'https://git.test/ops.git', 'git_auth': 'ssh', 'git_known_hosts': 'h'}, 'git_auth=ssh needs an ssh://'),
    ({'git_url': 'https://git.test/ops.git', 'git_auth': 'token'},
     'git_token is required with git_auth=token: the cluster holds no token yet'),
    ({'git_url': 'ssh://git@git.test/ops.git', 'git_auth': 'ssh'}, 'git_known_hosts is required with git_auth=ssh'),
])
def test_bad_input_fails_naming_it_and_changes_nothing(run_module, cluster, manifest, args, message):
    args = dict((k, manifest if v == 'MANIFEST' else v) for k, v in args.items())
    result = bootstrap(run_module, **args)
    assert result.failed and message in result.msg
    assert cluster.applied == []


def test_a_deploy_key_is_made_once_and_kept(run_module, cluster):
    flux_installed(cluster)
    args = dict(git_url='ssh://git@git.test/ops/gitops.git', git_auth='ssh', git_known_hosts='git.test ssh-ed25519 AAAA',
                wait=False)
    first = bootstrap(run_module, **args)
    assert not first.failed, first.msg
    assert first['deploy_key'].startswith('ssh-ed25519 ')
    again = bootstrap(run_module, **args)
    assert again['deploy_key'] == first['deploy_key'] and not again.changed
    rotated = bootstrap(run_module, rotate_credentials=True, **args)
    assert rotated.changed and rotated['deploy_key'] != first['deploy_key']


def test_a_kustomization_that_failed_to_fetch_its_artifact_is_asked_to_reconcile_again(run_module, cluster):
    flux_installed(cluster)
    bootstrap(run_module, **GIT)
    # As after an etcd restore: the artifact the restored status names is gone until source-controller stores it
    # again, and kustomize-controller would wait its retry interval.
    kustomization = cluster.find('kustomize.toolkit.fluxcd.io/v1', 'Kustomization', 'flux-system', 'flux-system')
    kustomization['status']['conditions'] = [{'type': 'Ready', 'status': 'False', 'reason': 'ArtifactFailed',
                                              'message': 'failed to download artifact: 404 Not Found'}]
    again = bootstrap(run_module, **GIT)
    assert not again.failed, again.msg
    kustomization = cluster.find('kustomize.toolkit.fluxcd.io/v1', 'Kustomization', 'flux-system', 'flux-system')
    requested = kustomization['metadata']['annotations']['reconcile.fluxcd.io/requestedAt']
    assert kustomization['status']['lastHandledReconcileAt'] == requested
    assert ('ephemeral.castle-reconcile', ('source.toolkit.fluxcd.io/v1', 'GitRepository', 'flux-system',
                                           'flux-system')) in cluster.applied
