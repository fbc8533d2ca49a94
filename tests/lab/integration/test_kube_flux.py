"""Flux's source and kustomize controllers in the Kubernetes emulator, against a real Git repository served over
HTTPS with Basic auth, driven with kubectl and the kubernetes client as an operator would."""

import base64
import http.server
import os
import pathlib
import shutil
import ssl
import subprocess
import threading
import uuid

import pytest
import yaml
from kubernetes import config, dynamic
from kubernetes.client.rest import ApiException

from castle_lab import config as lab_config
from castle_lab.kube.api.auth import ensure_cluster_pki
from castle_lab.kube.upstream_crds import bundled_crd
from castle_lab.services.kube import KubeService
from conftest import LAB_NET, REPO
from kube_helpers import wait_for

pytestmark = pytest.mark.lab

NET = LAB_NET
GIT_USER = 'castle'
FLUX_NS = 'flux-system'
APPS_NS = 'flux-apps'
IDENTITY = ['-c', 'user.name=flux-test', '-c', 'user.email=flux-test@localhost', '-c', 'commit.gpgsign=false']


class FluxKube(KubeService):
    """The emulator on an address of its own, beside whatever lab the session runs."""

    host = 45


def run(*args, cwd=None, env=None):
    return subprocess.run(list(args), cwd=cwd, env=env, capture_output=True, text=True, check=True, timeout=60)


class GitHandler(http.server.BaseHTTPRequestHandler):
    """Smart HTTP through `git http-backend`, behind Basic auth."""

    root = token = None

    def log_message(self, *args):
        pass

    def do_GET(self):
        self._serve()

    def do_POST(self):
        self._serve()

    def _serve(self):
        expected = 'Basic ' + base64.b64encode('{0}:{1}'.format(GIT_USER, self.token).encode()).decode()
        if self.headers.get('Authorization') != expected:
            self.send_response(401)
            self.send_header('WWW-Authenticate', 'Basic realm="git"')
            self.send_header('Content-Length', '0')
            self.end_headers()
            return
        path, _sep, query = self.path.partition('?')
        body = self.rfile.read(int(self.headers.get('Content-Length') or 0))
        env = {'PATH': os.environ['PATH'], 'GIT_PROJECT_ROOT': str(self.root), 'GIT_HTTP_EXPORT_ALL': '1',
               'PATH_INFO': path, 'QUERY_STRING': query, 'REQUEST_METHOD': self.command, 'REMOTE_USER': GIT_USER,
               'CONTENT_TYPE': self.headers.get('Content-Type', ''), 'CONTENT_LENGTH': str(len(body)),
               'HTTP_GIT_PROTOCOL': self.headers.get('Git-Protocol', ''),
               'HTTP_CONTENT_ENCODING': self.headers.get('Content-Encoding', '')}
        result = subprocess.run(['git', 'http-backend'], input=body, env=env, capture_output=True, check=False)
        head, _sep, payload = result.stdout.partition(b'\r\n\r\n')
        headers = [line.split(': ', 1) for line in head.decode().split('\r\n') if ': ' in line]
        status = next((int(v.split()[0]) for k, v in headers if k.lower() == 'status'), 200)
        self.send_response(status)
        for key, value in headers:
            if key.lower() != 'status':
                self.send_header(key, value)
        self.send_header('Content-Length', str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


class GitRepo:
    """A bare repository served over HTTPS and a working copy that commits to it."""

    def __init__(self, directory, address):
        self.dir = directory
        self.token = uuid.uuid4().hex
        self.bare = directory / 'repos' / 'gitops.git'
        self.work = directory / 'work'
        run('git', 'init', '--quiet', '--bare', '--initial-branch=main', str(self.bare))
        run('git', 'init', '--quiet', '--initial-branch=main', str(self.work))
        (directory / 'pki').mkdir()
        pki = ensure_cluster_pki(directory / 'pki', address)
        self.ca = pki['ca'].read_text()
        handler = type('Handler', (GitHandler,), {'root': directory / 'repos', 'token': self.token})
        self.server = http.server.ThreadingHTTPServer((address, 0), handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(pki['server_cert'], pki['server_key'])
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.url = 'https://{0}:{1}/gitops.git'.format(address, self.server.server_address[1])
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def commit(self, files, message='change'):
        """Writes (content) or removes (None) files, commits and pushes; returns the commit's sha."""
        for name, content in files.items():
            path = self.work / name
            if content is None:
                path.unlink()
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(content)
        run('git', 'add', '--all', cwd=self.work)
        run('git', *IDENTITY, 'commit', '--quiet', '-m', message, cwd=self.work)
        run('git', 'push', '--quiet', str(self.bare), 'HEAD:main', cwd=self.work)
        return run('git', 'rev-parse', 'HEAD', cwd=self.work).stdout.strip()

    def tag(self, name, sha):
        run('git', *IDENTITY, 'tag', '--annotate', '-m', name, name, sha, cwd=self.work)
        run('git', 'push', '--quiet', str(self.bare), 'refs/tags/' + name, cwd=self.work)


@pytest.fixture(scope='module')
def kube(tmp_path_factory):
    state = tmp_path_factory.mktemp('flux-lab')
    cfg = lab_config.load({'CASTLE_LAB_DIR': str(state), 'CASTLE_LAB_NET': NET,
                           'CASTLE_LAB_TOOLS': os.environ.get('CASTLE_LAB_TOOLS', str(
                               REPO / '.lab' / 'tools'))})
    service = FluxKube(cfg)
    service.start()
    try:
        service.ready()
        yield service
    finally:
        service.stop()


@pytest.fixture(scope='module')
def repo(tmp_path_factory):
    git_repo = GitRepo(tmp_path_factory.mktemp('flux-git'), '{0}.46'.format(NET))
    yield git_repo
    git_repo.server.shutdown()


@pytest.fixture(scope='module')
def dyn(kube):
    return dynamic.DynamicClient(config.new_client_from_config(str(kube.kubeconfig)))


def kubectl(kube, *args, stdin=None):
    env = dict(os.environ, KUBECONFIG=str(kube.kubeconfig))
    return subprocess.run([shutil.which('kubectl') or 'kubectl', *args], input=stdin, env=env, capture_output=True,
                          text=True, check=False, timeout=60)


def resource(dyn, api_version, kind):
    dyn.resources.invalidate_cache()
    return dyn.resources.get(api_version=api_version, kind=kind)


def get(dyn, api_version, kind, name, namespace=FLUX_NS):
    try:
        return resource(dyn, api_version, kind).get(name=name, namespace=namespace).to_dict()
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def kustomization(dyn, name):
    return get(dyn, 'kustomize.toolkit.fluxcd.io/v1', 'Kustomization', name)


def ready(obj):
    """The object's Ready condition, if any."""
    return next((c for c in ((obj or {}).get('status') or {}).get('conditions') or [] if c['type'] == 'Ready'), None)


def wait_ready(dyn, name, reason='ReconciliationSucceeded', kind='Kustomization', timeout=20.0):
    api_version = 'kustomize.toolkit.fluxcd.io/v1' if kind == 'Kustomization' else 'source.toolkit.fluxcd.io/v1'

    def check():
        obj = get(dyn, api_version, kind, name)
        cond = ready(obj)
        return obj if cond and cond['reason'] == reason else None
    return wait_for(check, '{0} {1} with reason {2}'.format(kind, name, reason), timeout)


def apply(kube, *objects):
    result = kubectl(kube, 'apply', '--server-side', '--field-manager=pytest', '-f', '-',
                     stdin=yaml.safe_dump_all(objects))
    assert result.returncode == 0, result.stderr


def request_reconcile(kube, kind, name):
    """Asks for a reconcile as `flux reconcile` does; returns the request's token."""
    token = uuid.uuid4().hex
    result = kubectl(kube, '-n', FLUX_NS, 'annotate', '--overwrite', kind, name,
                     'reconcile.fluxcd.io/requestedAt={0}'.format(token))
    assert result.returncode == 0, result.stderr
    return token


def flux_deployments():
    def deployment(name):
        labels = {'app': name}
        return {'apiVersion': 'apps/v1', 'kind': 'Deployment', 'metadata': {'name': name, 'namespace': FLUX_NS},
                'spec': {'selector': {'matchLabels': labels}, 'template': {'metadata': {'labels': labels}, 'spec': {
                    'containers': [{'name': 'manager', 'image': 'ghcr.io/fluxcd/{0}:latest'.format(name)}]}}}}
    return [deployment('source-controller'), deployment('kustomize-controller')]


def git_repository(url, secret='git-auth', **ref):
    return {'apiVersion': 'source.toolkit.fluxcd.io/v1', 'kind': 'GitRepository',
            'metadata': {'name': 'gitops', 'namespace': FLUX_NS},
            'spec': {'interval': '10m', 'url': url, 'ref': ref or {'branch': 'main'}, 'secretRef': {'name': secret}}}


def flux_kustomization(name, path, **spec):
    return {'apiVersion': 'kustomize.toolkit.fluxcd.io/v1', 'kind': 'Kustomization',
            'metadata': {'name': name, 'namespace': FLUX_NS},
            'spec': dict({'interval': '10m', 'path': path, 'prune': True,
                          'sourceRef': {'kind': 'GitRepository', 'name': 'gitops'}}, **spec)}


INFRA = {
    'infra/namespace.yaml': 'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {0}\n'.format(APPS_NS),
    'infra/settings.yaml': 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: {0}\n'
                           'data:\n  tier: infra\n'.format(APPS_NS),
    'infra/widgets.yaml': 'apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n'
                          '  name: widgets.flux.lab.example\nspec:\n  group: flux.lab.example\n  scope: Namespaced\n'
                          '  names: {plural: widgets, singular: widget, kind: Widget}\n  versions:\n'
                          '  - name: v1\n    served: true\n    storage: true\n    schema:\n'
                          '      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}\n',
    'infra/widget.yaml': 'apiVersion: flux.lab.example/v1\nkind: Widget\nmetadata:\n  name: gear\n'
                         '  namespace: {0}\nspec:\n  size: 3\n'.format(APPS_NS),
    'infra/extra.yaml': 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: extra\n  namespace: {0}\n'
                        'data:\n  keep: "no"\n'.format(APPS_NS),
    'infra/token.yaml': 'apiVersion: v1\nkind: Secret\nmetadata:\n  name: token\n  namespace: {0}\n'
                        '  annotations:\n    kustomize.toolkit.fluxcd.io/force: enabled\n'
                        'type: Opaque\nstringData:\n  token: one\n'.format(APPS_NS),
    'infra/seeded.yaml': 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: seeded\n  namespace: {0}\n'
                         '  annotations:\n    kustomize.toolkit.fluxcd.io/ssa: IfNotPresent\ndata:\n  value: first\n'
                         .format(APPS_NS),
    'infra/kept.yaml': 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: kept\n  namespace: {0}\n'
                       '  annotations:\n    kustomize.toolkit.fluxcd.io/prune: disabled\n'.format(APPS_NS),
}
APPS = {
    'apps/kustomization.yaml': 'apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n'
                               'resources:\n- blog.yaml\n- greeting.yaml\n',
    'apps/blog.yaml': 'apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: blog\nspec:\n'
                      '  replicas: ${replicas:=1}\n  selector:\n    matchLabels: {app: blog}\n  template:\n'
                      '    metadata:\n      labels: {app: blog}\n    spec:\n      containers:\n'
                      '      - name: blog\n        image: ${image}\n',
    'apps/greeting.yaml': 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: greeting\ndata:\n'
                          '  text: "hello ${who}"\n  region: ${region:-eu}\n  literal: $${who}\n',
}


@pytest.fixture(scope='module')
def flux(kube, repo, dyn):
    """Flux's CRDs, a GitRepository with its auth Secret, then the controller Deployments."""
    first = repo.commit(dict(INFRA, **APPS), 'Infra and apps')
    crds = [bundled_crd(n) for n in ('gitrepositories.source.toolkit.fluxcd.io',
                                     'kustomizations.kustomize.toolkit.fluxcd.io')]
    apply(kube, {'apiVersion': 'v1', 'kind': 'Namespace', 'metadata': {'name': FLUX_NS}}, *crds)
    wait_for(lambda: kubectl(kube, 'get', 'gitrepositories,kustomizations', '-A').returncode == 0, 'Flux CRDs served')
    secret = {'apiVersion': 'v1', 'kind': 'Secret', 'metadata': {'name': 'git-auth', 'namespace': FLUX_NS},
              'stringData': {'username': GIT_USER, 'password': repo.token, 'ca.crt': repo.ca}}
    apply(kube, secret, git_repository(repo.url))
    return {'first': first}


def test_nothing_reconciles_until_the_controllers_are_available(kube, dyn, flux):
    # Only the CRD's default status: no controller has looked at it yet.
    assert get(dyn, 'source.toolkit.fluxcd.io/v1', 'GitRepository', 'gitops')['status'] == {'observedGeneration': -1}
    apply(kube, *flux_deployments())
    source = wait_ready(dyn, 'gitops', 'Succeeded', kind='GitRepository')
    artifact = source['status']['artifact']
    sha = flux['first']
    assert artifact['revision'] == 'main@sha1:' + sha
    assert artifact['digest'].startswith('sha256:') and len(artifact['digest']) == len('sha256:') + 64
    assert artifact['path'] == 'gitrepository/flux-system/gitops/{0}.tar.gz'.format(sha)
    assert artifact['url'] == ('http://source-controller.flux-system.svc.cluster.local./gitrepository/'
                               'flux-system/gitops/{0}.tar.gz'.format(sha))
    assert artifact['size'] > 0 and artifact['lastUpdateTime']
    conditions = {c['type']: c for c in source['status']['conditions']}
    message = "stored artifact for revision 'main@sha1:{0}'".format(sha)
    assert (conditions['Ready']['message'], conditions['ArtifactInStorage']['reason']) == (message, 'Succeeded')
    assert source['status']['observedGeneration'] == source['metadata']['generation']
    assert 'finalizers.fluxcd.io' in source['metadata']['finalizers']


def test_git_failures_name_the_secret_or_the_clone(kube, dyn, repo, flux):
    broken = git_repository(repo.url, secret='absent')
    broken['metadata']['name'] = 'no-secret'
    wrong_branch = git_repository(repo.url, branch='nope')
    wrong_branch['metadata']['name'] = 'wrong-branch'
    apply(kube, broken, wrong_branch)
    failed = wait_ready(dyn, 'no-secret', 'AuthenticationFailed', kind='GitRepository')
    assert ready(failed)['message'] == "failed to get secret 'flux-system/absent': secrets \"absent\" not found"
    failed = wait_ready(dyn, 'wrong-branch', 'GitOperationFailed', kind='GitRepository')
    assert ready(failed)['status'] == 'False'
    assert ready(failed)['message'].startswith(
        "failed to checkout and determine revision: unable to clone '{0}': ".format(repo.url))
    assert repo.token not in ready(failed)['message']
    for name in ('no-secret', 'wrong-branch'):
        assert kubectl(kube, '-n', FLUX_NS, 'delete', 'gitrepository', name, '--wait=true').returncode == 0


def test_tags_semver_and_commits_name_the_revision(kube, dyn, repo, flux):
    first = flux['first']
    repo.tag('v1.0.0', first)
    repo.tag('v1.1.0-rc.1', first)
    refs = {'by-tag': {'tag': 'v1.0.0'}, 'by-semver': {'semver': '^1.0'}, 'by-commit': {'commit': first},
            'by-branch-commit': {'branch': 'main', 'commit': first}}
    sources = []
    for name, ref in refs.items():
        source = git_repository(repo.url, **ref)
        source['metadata']['name'] = name
        sources.append(source)
    apply(kube, *sources)
    expected = {'by-tag': 'v1.0.0@sha1:', 'by-semver': 'v1.0.0@sha1:', 'by-commit': 'sha1:',
                'by-branch-commit': 'main@sha1:'}
    for name, prefix in expected.items():
        assert wait_ready(dyn, name, 'Succeeded', kind='GitRepository')['status']['artifact']['revision'] == (
            prefix + first)
    assert kubectl(kube, '-n', FLUX_NS, 'delete', 'gitrepository', *refs, '--wait=true').returncode == 0


def test_dependencies_substitution_and_labels(kube, dyn, flux):
    apply(kube, {'apiVersion': 'v1', 'kind': 'ConfigMap', 'metadata': {
        'name': 'cluster-vars', 'namespace': FLUX_NS, 'labels': {'reconcile.fluxcd.io/watch': 'Enabled'}},
        'data': {'image': 'nginx:1.27', 'who': 'configmap', 'replicas': '2'}})
    apply(kube, flux_kustomization('infra', './infra', suspend=True, wait=True),
          flux_kustomization('apps', './apps', dependsOn=[{'name': 'infra'}], targetNamespace=APPS_NS,
                             commonMetadata={'labels': {'team': 'blog'}},
                             patches=[{'target': {'kind': 'ConfigMap', 'name': 'greeting'},
                                       'patch': '- {op: add, path: /data/patched, value: "yes"}'}],
                             postBuild={'substitute': {'who': 'world'},
                                        'substituteFrom': [{'kind': 'ConfigMap', 'name': 'cluster-vars'},
                                                           {'kind': 'Secret', 'name': 'optional-vars',
                                                            'optional': True}]}))
    waiting = wait_ready(dyn, 'apps', 'DependencyNotReady')
    assert ready(waiting)['message'] == "dependency 'flux-system/infra' is not ready"
    assert not (kustomization(dyn, 'infra').get('status') or {}).get('conditions')

    result = kubectl(kube, '-n', FLUX_NS, 'patch', 'kustomization', 'infra', '--type=merge',
                     '-p', '{"spec":{"suspend":false}}')
    assert result.returncode == 0, result.stderr
    revision = 'main@sha1:' + flux['first']
    infra = wait_ready(dyn, 'infra')
    assert ready(infra)['message'] == 'Applied revision: ' + revision
    assert {c['type']: c['status'] for c in infra['status']['conditions']}['Healthy'] == 'True'
    apps = wait_ready(dyn, 'apps')
    listing = kubectl(kube, '-n', FLUX_NS, 'get', 'kustomization', 'apps').stdout.splitlines()
    assert listing[0].split() == ['NAME', 'AGE', 'READY', 'STATUS']
    assert listing[1].split()[2:] == ['True', 'Applied', 'revision:', revision]
    assert (apps['status']['lastAppliedRevision'], apps['status']['lastAttemptedRevision']) == (revision, revision)
    assert apps['status']['observedGeneration'] == apps['metadata']['generation']
    ids = [e['id'] for e in apps['status']['inventory']['entries']]
    assert sorted(ids) == ['flux-apps_blog_apps_Deployment', 'flux-apps_greeting__ConfigMap']
    assert [e['id'] for e in infra['status']['inventory']['entries']] == [
        '_flux-apps__Namespace', '_widgets.flux.lab.example_apiextensions.k8s.io_CustomResourceDefinition',
        'flux-apps_extra__ConfigMap', 'flux-apps_kept__ConfigMap', 'flux-apps_seeded__ConfigMap',
        'flux-apps_settings__ConfigMap', 'flux-apps_token__Secret', 'flux-apps_gear_flux.lab.example_Widget']
    assert get(dyn, 'flux.lab.example/v1', 'Widget', 'gear', APPS_NS)['spec'] == {'size': 3}

    greeting = get(dyn, 'v1', 'ConfigMap', 'greeting', APPS_NS)
    assert greeting['data'] == {'text': 'hello world', 'region': 'eu', 'literal': '${who}', 'patched': 'yes'}
    assert greeting['metadata']['labels'] == {'team': 'blog', 'kustomize.toolkit.fluxcd.io/name': 'apps',
                                              'kustomize.toolkit.fluxcd.io/namespace': FLUX_NS}
    blog = get(dyn, 'apps/v1', 'Deployment', 'blog', APPS_NS)
    assert blog['spec']['replicas'] == 2
    assert blog['spec']['template']['spec']['containers'][0]['image'] == 'nginx:1.27'
    managers = {e['manager'] for e in blog['metadata']['managedFields']}
    assert 'kustomize-controller' in managers


def test_a_watched_configmap_change_reapplies(kube, dyn, flux):
    result = kubectl(kube, '-n', FLUX_NS, 'patch', 'configmap', 'cluster-vars', '--type=merge',
                     '-p', '{"data":{"image":"nginx:1.28"}}')
    assert result.returncode == 0, result.stderr
    wait_for(lambda: get(dyn, 'apps/v1', 'Deployment', 'blog', APPS_NS)['spec']['template']['spec']['containers'][0][
        'image'] == 'nginx:1.28', 'blog runs the image of the changed ConfigMap', timeout=20.0)


def test_prune_after_a_commit_removes_a_file(kube, dyn, repo, flux):
    token = get(dyn, 'v1', 'Secret', 'token', APPS_NS)
    changes = {'infra/extra.yaml': None, 'infra/kept.yaml': None,
               'infra/seeded.yaml': INFRA['infra/seeded.yaml'].replace('first', 'second'),
               'infra/token.yaml': INFRA['infra/token.yaml'].replace('Opaque', 'castle.example/token')}
    sha = repo.commit(changes, 'Drop extra and kept, change seeded, retype token')
    requested = request_reconcile(kube, 'gitrepository', 'gitops')
    wait_for(lambda: kustomization(dyn, 'infra')['status'].get('lastAppliedRevision') == 'main@sha1:' + sha,
             'infra applies the new revision', timeout=20.0)
    assert get(dyn, 'v1', 'ConfigMap', 'extra', APPS_NS) is None
    assert get(dyn, 'v1', 'ConfigMap', 'kept', APPS_NS) is not None
    assert get(dyn, 'v1', 'ConfigMap', 'seeded', APPS_NS)['data'] == {'value': 'first'}
    retyped = get(dyn, 'v1', 'Secret', 'token', APPS_NS)
    assert retyped['type'] == 'castle.example/token'
    assert retyped['metadata']['uid'] != token['metadata']['uid']
    assert get(dyn, 'v1', 'ConfigMap', 'settings', APPS_NS) is not None
    wait_for(lambda: kustomization(dyn, 'apps')['status'].get('lastAppliedRevision') == 'main@sha1:' + sha,
             'apps follows infra to the new revision', timeout=20.0)
    flux['applied'] = sha
    source = get(dyn, 'source.toolkit.fluxcd.io/v1', 'GitRepository', 'gitops')
    assert source['status']['lastHandledReconcileAt'] == requested
    requested = request_reconcile(kube, 'kustomization', 'apps')
    wait_for(lambda: kustomization(dyn, 'apps')['status'].get('lastHandledReconcileAt') == requested,
             'apps answers the reconcile request')


def test_a_broken_commit_fails_the_build_and_keeps_what_was_applied(kube, dyn, repo, flux):
    sha = repo.commit({'apps/kustomization.yaml': APPS['apps/kustomization.yaml'] + '- missing.yaml\n'}, 'Break')
    request_reconcile(kube, 'gitrepository', 'gitops')
    failed = wait_ready(dyn, 'apps', 'BuildFailed')
    assert ready(failed)['message'].startswith('kustomize build failed:')
    assert 'missing.yaml' in ready(failed)['message']
    assert failed['status']['lastAttemptedRevision'] == 'main@sha1:' + sha
    assert failed['status']['lastAppliedRevision'] == 'main@sha1:' + flux['applied']
    assert get(dyn, 'apps/v1', 'Deployment', 'blog', APPS_NS) is not None


def test_a_rejected_object_fails_the_dry_run_and_nothing_is_applied(kube, dyn, repo, flux):
    bad = ('apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: broken\nspec:\n  selector:\n'
           '    matchLabels: {app: broken}\n  template:\n    metadata:\n      labels: {app: other}\n'
           '    spec:\n      containers:\n      - name: broken\n        image: nginx\n')
    note = 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: note\ndata:\n  a: b\n'
    repo.commit({'apps/kustomization.yaml': APPS['apps/kustomization.yaml'] + '- note.yaml\n- broken.yaml\n',
                 'apps/note.yaml': note, 'apps/broken.yaml': bad}, 'Invalid deployment')
    request_reconcile(kube, 'gitrepository', 'gitops')
    failed = wait_ready(dyn, 'apps', 'ReconciliationFailed')
    assert ready(failed)['message'].startswith('Deployment/flux-apps/broken dry-run failed: ')
    assert 'selector' in ready(failed)['message']
    assert get(dyn, 'v1', 'ConfigMap', 'note', APPS_NS) is None


def test_health_checks_time_out_naming_the_object(kube, dyn, repo, flux):
    sha = repo.commit({'apps/kustomization.yaml': APPS['apps/kustomization.yaml'], 'apps/note.yaml': None,
                       'apps/broken.yaml': None}, 'Repair')
    request_reconcile(kube, 'gitrepository', 'gitops')
    wait_for(lambda: kustomization(dyn, 'apps')['status'].get('lastAppliedRevision') == 'main@sha1:' + sha,
             'apps applies the repaired revision', timeout=20.0)
    # It applies infra's objects too, but without prune its deletion leaves them to infra.
    apply(kube, flux_kustomization('watcher', './infra', prune=False, dependsOn=[{'name': 'apps'}], timeout='1s',
                                   healthChecks=[
                                       {'apiVersion': 'apps/v1', 'kind': 'Deployment', 'name': 'blog',
                                        'namespace': APPS_NS},
                                       {'apiVersion': 'apps/v1', 'kind': 'Deployment', 'name': 'ghost',
                                        'namespace': APPS_NS}]))
    failed = wait_ready(dyn, 'watcher', 'HealthCheckFailed')
    message = ready(failed)['message']
    assert message.startswith('health check failed after ')
    assert message.endswith(": timeout waiting for: [Deployment/flux-apps/ghost status: 'NotFound']")
    assert {c['type']: c['status'] for c in failed['status']['conditions']}['Healthy'] == 'False'


def test_a_missing_source_and_path_fail_as_artifact_failures(kube, dyn, flux):
    orphan = flux_kustomization('orphan', './infra')
    orphan['spec']['sourceRef']['name'] = 'elsewhere'
    unsubstituted = flux_kustomization('unsubstituted', './infra', prune=False, postBuild={
        'substituteFrom': [{'kind': 'ConfigMap', 'name': 'absent'}]})
    misnamed = flux_kustomization('misnamed', './infra', prune=False, postBuild={'substitute': {'bad-name': 'x'}})
    apply(kube, orphan, flux_kustomization('nowhere', './no/such/dir'), unsubstituted, misnamed)
    assert ready(wait_ready(dyn, 'unsubstituted', 'BuildFailed'))['message'] == (
        "substitute from 'ConfigMap/absent' error: configmaps \"absent\" not found")
    assert ready(wait_ready(dyn, 'misnamed', 'BuildFailed'))['message'].endswith(
        "'bad-name' var name is invalid, must match '^[_[:alpha:]][_[:alpha:][:digit:]]*$'")
    assert ready(wait_ready(dyn, 'orphan', 'ArtifactFailed'))['message'] == (
        "Source 'GitRepository/flux-system/elsewhere' not found")
    assert ready(wait_ready(dyn, 'nowhere', 'ArtifactFailed'))['message'].startswith(
        'kustomization path not found: ')


def test_deleting_a_pruning_kustomization_deletes_its_objects(kube, dyn, flux):
    for name in ('watcher', 'orphan', 'nowhere', 'unsubstituted', 'misnamed'):
        assert kubectl(kube, '-n', FLUX_NS, 'delete', 'kustomization', name, '--wait=true').returncode == 0
    result = kubectl(kube, '-n', FLUX_NS, 'delete', 'kustomization', 'apps', '--wait=true')
    assert result.returncode == 0, result.stderr
    assert get(dyn, 'apps/v1', 'Deployment', 'blog', APPS_NS) is None
    assert get(dyn, 'v1', 'ConfigMap', 'greeting', APPS_NS) is None
    assert get(dyn, 'v1', 'ConfigMap', 'settings', APPS_NS) is not None


def test_the_labs_flux_manifest_and_git_host(lab):
    """The session lab's own pieces together: its Flux install manifest, its Git host over HTTPS."""
    env = lab.client_env()
    run_kubectl = [shutil.which('kubectl', path=env['PATH']) or 'kubectl']
    applied = subprocess.run(run_kubectl + ['apply', '--server-side', '--force-conflicts', '-f',
                                            env['CASTLE_FLUX_MANIFEST']],
                             env=env, capture_output=True, text=True, check=False, timeout=60)
    assert applied.returncode == 0, applied.stderr
    name = 'lab-gitops-{0}'.format(uuid.uuid4().hex[:6])
    objects = [{'apiVersion': 'v1', 'kind': 'Secret', 'metadata': {'name': name, 'namespace': FLUX_NS},
                'stringData': {'username': env['CASTLE_GITOPS_USERNAME'], 'password': env['CASTLE_GITOPS_TOKEN'],
                               'ca.crt': pathlib.Path(env['CASTLE_GITOPS_CA']).read_text()}},
               dict(git_repository(env['CASTLE_GITOPS_URL'], secret=name), metadata={
                   'name': name, 'namespace': FLUX_NS})]
    created = subprocess.run(run_kubectl + ['apply', '--server-side', '-f', '-'], input=yaml.safe_dump_all(objects),
                             env=env, capture_output=True, text=True, check=False, timeout=60)
    assert created.returncode == 0, created.stderr
    lab_dyn = dynamic.DynamicClient(config.new_client_from_config(env['KUBECONFIG']))
    source = wait_ready(lab_dyn, name, 'Succeeded', kind='GitRepository', timeout=60.0)
    assert source['status']['artifact']['revision'].startswith('main@sha1:')
    deleted = subprocess.run(run_kubectl + ['-n', FLUX_NS, 'delete', 'gitrepository,secret', name, '--wait=true'],
                             env=env, capture_output=True, text=True, check=False, timeout=60)
    assert deleted.returncode == 0, deleted.stderr
