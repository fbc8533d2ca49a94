"""The example GitOps repository the lab seeds: every layer builds with the real `kubectl kustomize`, the layers
form Flux's DAG, and the apps are what the lab's emulator and the collection's foundation can bring to Ready."""

import pathlib
import re
import shutil
import subprocess

import pytest
import yaml

REPO = pathlib.Path(__file__).resolve().parents[3]
SEED = REPO / 'lab' / 'castle_lab' / 'git' / 'seed' / 'gitops'
KUBECTL = shutil.which('kubectl') or str(REPO / '.lab' / 'tools' / 'bin' / 'kubectl')
LAYERS = {'operators': './infrastructure/operators', 'configs': './infrastructure/configs',
          'instances': './infrastructure/instances', 'apps': './apps/lab'}
# What the collection's cluster-vars ConfigMap holds; every other variable needs a default.
CLUSTER_VARS = {'cluster_name', 'cluster_domain', 'metallb_addresses'}
VARIABLE = re.compile(r'\$\{([_a-zA-Z][_a-zA-Z0-9]*)(:?=[^}]*)?\}')
KAZE = {'kaze-runtime': 4100, 'kaze-gateway': 4200, 'kaze-knowledge': 4300}

needs_kubectl = pytest.mark.skipif(not pathlib.Path(KUBECTL).exists() and not shutil.which('kubectl'),
                                   reason='kubectl is not installed (make setup fetches it)')


def build(path):
    result = subprocess.run([KUBECTL, 'kustomize', str(SEED / path)], capture_output=True, text=True, check=False,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def layers():
    return {doc['metadata']['name']: doc for doc in yaml.safe_load_all(
        (SEED / 'clusters' / 'lab' / 'layers.yaml').read_text()) if doc}


def by_kind(objects, kind):
    return {o['metadata']['name']: o for o in objects if o['kind'] == kind}


def test_the_layers_form_flux_dag_with_cluster_vars():
    found = layers()
    assert {name: doc['spec']['path'] for name, doc in found.items()} == LAYERS
    order = list(LAYERS)
    for before, name in zip(order, order[1:]):
        assert found[name]['spec']['dependsOn'] == [{'name': before}]
    assert 'dependsOn' not in found['operators']['spec']
    for doc in found.values():
        spec = doc['spec']
        assert doc['metadata']['namespace'] == 'flux-system'
        assert spec['sourceRef'] == {'kind': 'GitRepository', 'name': 'flux-system'}
        assert spec['prune'] is True and spec['wait'] is True
        assert spec['postBuild']['substituteFrom'] == [
            {'kind': 'ConfigMap', 'name': 'cluster-vars'},
            {'kind': 'Secret', 'name': 'cluster-secrets', 'optional': True}]


@needs_kubectl
@pytest.mark.parametrize('path', ['clusters/lab'] + [p[2:] for p in LAYERS.values()])
def test_every_layer_builds_with_kubectl_kustomize(path):
    assert build(path)


def test_variables_are_cluster_vars_or_have_defaults():
    for path in SEED.rglob('*.yaml'):
        for name, default in VARIABLE.findall(path.read_text()):
            assert name in CLUSTER_VARS or default, '{0}: ${{{1}}} has no default'.format(path, name)


@needs_kubectl
def test_each_layer_only_uses_namespaces_the_operators_layer_makes():
    operators = build('infrastructure/operators')
    namespaces = set(by_kind(operators, 'Namespace'))
    assert namespaces == {'kaze', 'blog', 'mcp'}
    assert by_kind(operators, 'RoleBinding') and by_kind(operators, 'ServiceAccount')
    for path in ('infrastructure/configs', 'infrastructure/instances', 'apps/lab'):
        for obj in build(path):
            assert obj['metadata']['namespace'] in namespaces, (path, obj['metadata'])
            assert not obj['apiVersion'].startswith('external-secrets.io/'), obj


@needs_kubectl
def test_kaze_services_sync_their_agents_and_keep_a_workspace():
    apps = build('apps/lab')
    deployments, services, claims = (by_kind(apps, kind) for kind in ('Deployment', 'Service',
                                                                      'PersistentVolumeClaim'))
    for name, port in KAZE.items():
        pod = deployments[name]['spec']['template']['spec']
        containers = {c['name']: c for c in pod['containers']}
        assert containers[name]['ports'] == [{'name': 'http', 'containerPort': port}]
        env = {e['name']: e['value'] for e in containers[name]['env']}
        assert env['CASTLE_CLUSTER'] == '${cluster_name}' and env['CASTLE_DOMAIN'] == '${cluster_domain}'
        sync = containers['git-sync']
        assert sync['image'].startswith('registry.k8s.io/git-sync/git-sync:')
        assert any(arg.startswith('--repo=${kaze_agents_repo:=') for arg in sync['args'])
        assert services[name]['spec']['ports'][0]['port'] == port
        workspace = next(v for v in pod['volumes'] if v['name'] == 'workspace')
        claim = claims[workspace['persistentVolumeClaim']['claimName']]
        assert claim['spec']['storageClassName'] == 'longhorn'
        assert claim['spec']['resources']['requests']['storage'] == '5Gi'
    ingress = by_kind(apps, 'Ingress')['blog']
    assert ingress['spec']['rules'][0]['host'] == 'blog.${cluster_domain}'
    assert {'blog', 'mcp'} <= set(deployments) and {'blog', 'mcp'} <= set(services)
