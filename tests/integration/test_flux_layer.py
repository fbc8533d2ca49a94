"""The Kubernetes and Flux layer end to end: playbooks/flux.yml against the lab's Kubernetes emulator and
Git host, then the cluster's state read back with kubectl and the kubernetes client."""

import json
import time
import uuid

import pytest
import yaml

from gitops import git
from harness import play_recap, run_module, run_playbook
from kube_helpers import wait_for

pytestmark = pytest.mark.lab

LAYERS = ('operators', 'configs', 'instances', 'apps')
CHARTS = ('external-secrets', 'metallb', 'longhorn')


def playbook(lab, env, *args, check=False):
    return run_playbook(env, 'playbooks/flux.yml', *args, inventory=lab.inventory / 'hosts.yml', check=check, diff=check)


def kubectl_json(lab, env, *args):
    return json.loads(lab.run('kubectl', *args, '-o', 'json', env=env).stdout)


def ready(obj):
    return any(c['type'] == 'Ready' and c['status'] == 'True' for c in obj.get('status', {}).get('conditions', []))


def flux_wait(lab, env, **args):
    outcome = run_module(env, 'flux_wait', **args)
    return outcome.rc, outcome.result


@pytest.fixture(scope='module')
def bootstrapped(lab, env):
    """A check run on the empty cluster, then the real run and a second one."""
    runs = {'check_empty': playbook(lab, env, check=True)}
    runs['namespaces_after_check'] = [n['metadata']['name'] for n in kubectl_json(
        lab, env, 'get', 'namespaces')['items']]
    runs['first'] = playbook(lab, env)
    runs['second'] = playbook(lab, env)
    yield runs
    # Hand the session's cluster back without the handoff and the charts: Flux prunes what the
    # layers applied, helm-controller uninstalls the releases (cluster-scoped objects included).
    lab.run('kubectl', 'delete', '-n', 'flux-system', '--timeout=60s', 'kustomization/flux-system',
            *['helmrelease/' + chart for chart in CHARTS], env=env)
    lab.run('kubectl', 'delete', '--timeout=60s', 'namespace', 'external-secrets', 'metallb-system',
            'longhorn-system', env=env)


def test_a_check_run_on_an_empty_cluster_changes_nothing(bootstrapped):
    assert bootstrapped['check_empty'].returncode == 0, bootstrapped['check_empty'].stdout[-3000:]
    assert play_recap(bootstrapped['check_empty'])['localhost']['changed'] > 0
    assert 'flux-system' not in bootstrapped['namespaces_after_check']
    assert 'metallb-system' not in bootstrapped['namespaces_after_check']


def test_the_playbook_brings_every_kustomization_and_helmrelease_to_ready(lab, env, bootstrapped):
    assert bootstrapped['first'].returncode == 0, bootstrapped['first'].stdout[-4000:]
    kustomizations = {k['metadata']['name']: k for k in kubectl_json(
        lab, env, 'get', 'kustomizations.kustomize.toolkit.fluxcd.io', '-n', 'flux-system')['items']}
    assert set(LAYERS) | {'flux-system'} <= set(kustomizations)
    for name, obj in kustomizations.items():
        assert ready(obj), (name, obj['status'])
        assert obj['status']['lastAppliedRevision'].startswith('main@sha1:')
    assert kustomizations['configs']['spec']['dependsOn'] == [{'name': 'operators'}]
    releases = {r['metadata']['name']: r for r in kubectl_json(
        lab, env, 'get', 'helmreleases.helm.toolkit.fluxcd.io', '-n', 'flux-system')['items']}
    assert set(CHARTS) <= set(releases)
    for name in CHARTS:
        assert ready(releases[name]), (name, releases[name]['status'])
    pool = kubectl_json(lab, env, 'get', 'ipaddresspools.metallb.io', 'castle-pool', '-n', 'metallb-system')
    assert pool['spec']['addresses'] == [env['CASTLE_LAB_NET'] + '.200-' + env['CASTLE_LAB_NET'] + '.220']
    for name in ('kaze-runtime', 'kaze-gateway', 'kaze-knowledge'):
        deployment = kubectl_json(lab, env, 'get', 'deployment', name, '-n', 'kaze')
        assert deployment['status']['availableReplicas'] >= 1


def test_the_charts_needing_host_access_get_privileged_namespaces(lab, env, bootstrapped):
    """The cluster enforces the baseline Pod Security level (as Talos configures it): the foundation labels the
    namespaces of the charts that need host access privileged, so longhorn-manager and MetalLB's speaker run."""
    assert bootstrapped['first'].returncode == 0
    modes = ('enforce', 'audit', 'warn')
    for namespace, privileged in (('metallb-system', True), ('longhorn-system', True), ('external-secrets', False)):
        labels = kubectl_json(lab, env, 'get', 'namespace', namespace)['metadata'].get('labels') or {}
        found = {k: v for k, v in labels.items() if k.startswith('pod-security.kubernetes.io/')}
        assert found == ({'pod-security.kubernetes.io/' + mode: 'privileged' for mode in modes} if privileged else {})

    def all_ready(namespace):
        daemon_sets = [d.get('status') or {} for d in kubectl_json(lab, env, 'get', 'daemonsets', '-n', namespace)[
            'items']]
        return daemon_sets and all(s.get('numberReady') == s.get('desiredNumberScheduled', 0) > 0 for s in daemon_sets)
    for namespace in ('metallb-system', 'longhorn-system'):
        wait_for(lambda ns=namespace: all_ready(ns), 'the DaemonSets of {0} ready'.format(namespace))


def test_the_source_is_fetched_with_the_token_kept_in_the_cluster(lab, env, bootstrapped):
    assert bootstrapped['first'].returncode == 0
    source = kubectl_json(lab, env, 'get', 'gitrepositories.source.toolkit.fluxcd.io', 'flux-system',
                          '-n', 'flux-system')
    assert source['spec']['url'] == env['CASTLE_GITOPS_URL']
    assert source['spec']['secretRef'] == {'name': 'flux-system'}
    head = git(lab, env, 'ls-remote', env['CASTLE_GITOPS_URL'], 'refs/heads/main').stdout.split()[0]
    assert source['status']['artifact']['revision'] == 'main@sha1:' + head
    assert env['CASTLE_GITOPS_TOKEN'] not in bootstrapped['first'].stdout


def test_a_second_run_reports_no_change(bootstrapped):
    assert bootstrapped['second'].returncode == 0, bootstrapped['second'].stdout[-3000:]
    assert play_recap(bootstrapped['second'])['localhost']['changed'] == 0, bootstrapped['second'].stdout[-3000:]


def env_of(deployment, container, name):
    for item in deployment['spec']['template']['spec']['containers']:
        if item['name'] == container:
            return {e['name']: e.get('value') for e in item.get('env', [])}.get(name)
    return None


def set_cluster_vars(lab, env, values, check=False):
    result = run_module(env, 'flux_bootstrap', check=check, diff=check, cluster_vars=values)
    assert result.rc == 0, result.stdout[-3000:]
    return result


def test_a_new_cluster_var_value_is_rendered_into_the_apps(lab, env, bootstrapped):
    assert bootstrapped['first'].returncode == 0
    domain = 'changed-{0}.castle.internal'.format(uuid.uuid4().hex[:6])
    inventory = yaml.safe_load((lab.inventory / 'hosts.yml').read_text())
    before = inventory['all']['vars']['castle_cluster_vars']
    preview = set_cluster_vars(lab, env, dict(before, cluster_domain=domain), check=True)
    assert '+            "cluster_domain": "{0}"'.format(domain) in preview.stdout
    set_cluster_vars(lab, env, dict(before, cluster_domain=domain))
    try:
        wait_for(lambda: env_of(kubectl_json(lab, env, 'get', 'deployment', 'kaze-gateway', '-n', 'kaze'),
                                'kaze-gateway', 'CASTLE_DOMAIN') == domain, 'the new cluster_domain in kaze-gateway',
                 timeout=60)
    finally:
        set_cluster_vars(lab, env, before)


@pytest.fixture
def checkout(lab, env, tmp_path):
    """A clone of the GitOps repository; whatever a test commits is reverted and reconciled afterwards."""
    path = tmp_path / 'gitops'
    git(lab, env, 'clone', '--quiet', env['CASTLE_GITOPS_URL'], str(path))
    start = git(lab, env, 'rev-parse', 'HEAD', cwd=path).stdout.strip()
    yield path
    git(lab, env, 'fetch', '--quiet', 'origin', cwd=path)
    if git(lab, env, 'rev-parse', 'origin/main', cwd=path).stdout.strip() != start:
        git(lab, env, 'reset', '--quiet', '--hard', 'origin/main', cwd=path)
        git(lab, env, 'revert', '--no-edit', '{0}..HEAD'.format(start), cwd=path)
        git(lab, env, 'push', '--quiet', 'origin', 'main', cwd=path)
        code, result = flux_wait(lab, env, namespace='flux-system', kinds=['Kustomization'], reconcile=True,
                                 timeout=120)
        assert code == 0, result['msg'] if 'msg' in result else result


def commit(lab, env, path, message):
    git(lab, env, 'add', '--all', cwd=path)
    git(lab, env, 'commit', '--quiet', '-m', message, cwd=path)
    git(lab, env, 'push', '--quiet', 'origin', 'main', cwd=path)


def test_a_commit_that_removes_an_object_prunes_it(lab, env, bootstrapped, checkout):
    assert bootstrapped['first'].returncode == 0
    blog = checkout / 'apps' / 'lab' / 'blog'
    assert blog.is_dir(), sorted(p.name for p in blog.parent.iterdir())
    kustomization = blog / 'kustomization.yaml'
    listed = yaml.safe_load(kustomization.read_text())
    ingress = next(r for r in listed['resources'] if 'ingress' in r)
    listed['resources'].remove(ingress)
    kustomization.write_text(yaml.safe_dump(listed))
    (blog / ingress).unlink()
    commit(lab, env, checkout, 'Retire the blog ingress')
    assert lab.run('kubectl', 'get', 'ingress', 'blog', '-n', 'blog', env=env).returncode == 0
    code, result = flux_wait(lab, env, namespace='flux-system', kinds=['Kustomization'], reconcile=True, timeout=120)
    assert code == 0, result.get('msg')
    gone = lab.run('kubectl', 'get', 'ingress', 'blog', '-n', 'blog', env=env, check=False)
    assert gone.returncode == 1 and 'NotFound' in gone.stderr


def test_a_broken_commit_makes_flux_wait_fail_naming_the_kustomization(lab, env, bootstrapped, checkout):
    assert bootstrapped['first'].returncode == 0
    apps = checkout / 'apps' / 'lab' / 'kustomization.yaml'
    listed = yaml.safe_load(apps.read_text())
    listed['resources'].append('broken.yaml')
    apps.write_text(yaml.safe_dump(listed))
    (apps.parent / 'broken.yaml').write_text('apiVersion: v1\nkind: ConfigMap\nmetadata: {name: broken\n')
    commit(lab, env, checkout, 'Add a manifest that is not valid YAML')
    began = time.monotonic()
    code, result = flux_wait(lab, env, namespace='flux-system', kinds=['Kustomization'], reconcile=True, timeout=10)
    took = time.monotonic() - began
    assert code != 0
    assert result['msg'].startswith('timed out after 10s: Kustomization flux-system/apps is not Ready: BuildFailed: '
                                    'kustomize build failed:'), result['msg']
    assert 'broken.yaml' in result['msg'] or 'yaml' in result['msg'].lower()
    assert took < 10 + 15
    apps = next(o for o in result['objects'] if o['name'] == 'apps')
    assert not apps['ready'] and apps['reason'] == 'BuildFailed'
    assert all(o['ready'] for o in result['objects'] if o['name'] in ('operators', 'configs', 'instances'))


def bootstrap_module(lab, env, check=False, **args):
    outcome = run_module(env, 'flux_bootstrap', check=check, **args)
    return outcome.rc, outcome.result


@pytest.fixture
def probe_namespace(lab, env):
    """A namespace for sync objects that Flux fails on, away from flux-system's layers."""
    name = 'flux-probe-{0}'.format(uuid.uuid4().hex[:6])
    lab.run('kubectl', 'create', 'namespace', name, env=env)
    yield name
    lab.run('kubectl', 'delete', 'namespace', name, '--wait=false', env=env)


def test_an_ssh_deploy_key_is_made_once_kept_and_rotated_only_when_asked(lab, env, bootstrapped, probe_namespace):
    assert bootstrapped['first'].returncode == 0
    args = dict(namespace=probe_namespace, git_url='ssh://git@git.example.internal/ops/gitops.git',
                git_auth='ssh', git_known_hosts='git.example.internal ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHostKey',
                wait=False)
    code, made = bootstrap_module(lab, env, **args)
    assert code == 0 and made['changed'], made
    assert made['deploy_key'].startswith('ssh-ed25519 ')
    stored = kubectl_json(lab, env, 'get', 'secret', 'flux-system', '-n', probe_namespace)
    assert set(stored['data']) == {'identity', 'identity.pub', 'known_hosts'}
    code, again = bootstrap_module(lab, env, **args)
    assert code == 0 and not again['changed'] and again['deploy_key'] == made['deploy_key'], again
    code, rotated = bootstrap_module(lab, env, rotate_credentials=True, **args)
    assert code == 0 and rotated['changed'] and rotated['deploy_key'] != made['deploy_key'], rotated


def test_a_stored_token_is_reused_when_none_is_given(lab, env, bootstrapped, probe_namespace):
    assert bootstrapped['first'].returncode == 0
    args = dict(namespace=probe_namespace, git_url=env['CASTLE_GITOPS_URL'], git_auth='token', wait=False)
    code, refused = bootstrap_module(lab, env, **args)
    assert code != 0 and 'git_token is required' in refused['msg']
    gone = lab.run('kubectl', 'get', 'gitrepository', 'flux-system', '-n', probe_namespace, env=env, check=False)
    assert gone.returncode == 1, 'a refused run must create nothing'
    code, made = bootstrap_module(lab, env, git_token='first-token', **args)
    assert code == 0 and made['changed']
    code, again = bootstrap_module(lab, env, **args)
    assert code == 0 and not again['changed'], again
    assert 'first-token' not in json.dumps(again)
    began = time.monotonic()
    code, waited = bootstrap_module(lab, env, **{**args, 'wait': True, 'wait_timeout': 3})
    assert code != 0 and time.monotonic() - began < 3 + 10
    assert waited['msg'].startswith('timed out after 3s: GitRepository/{0}/flux-system is not Ready: '.format(
        probe_namespace)), waited['msg']
    assert 'first-token' not in waited['msg']


@pytest.mark.parametrize('args, message', [
    ({'git_url': 'git://git.example.internal/gitops.git'}, "git_url 'git://git.example.internal/gitops.git' must start"),
    ({'git_url': 'https://git.example.internal/gitops.git', 'git_auth': 'ssh', 'git_known_hosts': 'h k'},
     'git_auth=ssh needs an ssh:// git_url'),
    ({'manifest_path': '/nonexistent/install.yaml', 'version': 'v2.9.1'}, 'manifest_path /nonexistent/install.yaml'),
])
def test_bad_input_is_refused_naming_it(lab, env, args, message):
    code, result = bootstrap_module(lab, env, **args)
    assert code != 0 and message in result['msg'], result


def test_a_manifest_of_another_version_is_refused(lab, env):
    code, result = bootstrap_module(lab, env, manifest_path=env['CASTLE_FLUX_MANIFEST'], version='v2.8.0')
    assert code != 0
    assert result['msg'] == '{0} installs Flux {1}, not the pinned version v2.8.0'.format(
        env['CASTLE_FLUX_MANIFEST'], env['CASTLE_FLUX_VERSION'])
