"""The pure parts of the Flux emulation: post-build substitution, durations, inventory ids, apply stages,
readiness, and the kustomization.yaml generated for plain manifests."""

import asyncio

import pytest

from castle_lab import config
from castle_lab.kube.api.objects import KubeApi
from castle_lab.kube.controllers.flux import envsubst, objects as flux_objects
from castle_lab.kube.controllers.flux.common import Failure
from castle_lab.kube.controllers.flux.envsubst import SubstitutionError, substitute
from castle_lab.kube.controllers.flux.kustomize import KustomizationController
from castle_lab.process import LabError
from castle_lab.services.kube import KubeService


@pytest.mark.parametrize('text, expected', [
    ('image: ${image}', 'image: nginx:1.27'),
    ('${missing}', ''),
    ('${missing:=fallback}', 'fallback'),
    ('${missing:-fallback}', 'fallback'),
    ('${empty:-fallback}', 'fallback'),
    ('${empty-fallback}', ''),
    ('${image:=fallback}', 'nginx:1.27'),
    ('${missing:=${region}}', 'eu-central-1'),
    ('$${image}', '${image}'),
    ('cost: $$5', 'cost: $5'),
    ('echo $image', 'echo $image'),
    ('${region:0:2}', 'eu'),
    ('${region/central/west}', 'eu-west-1'),
    ('${#region}', '12'),
    ('${region^^}', 'EU-CENTRAL-1'),
])
def test_substitution_follows_bash_forms(text, expected):
    variables = {'image': 'nginx:1.27', 'region': 'eu-central-1', 'empty': ''}
    assert substitute(text, variables) == expected


@pytest.mark.parametrize('text', ['${', '${1abc}', '${image@Q}'])
def test_bad_expressions_are_errors(text):
    with pytest.raises(SubstitutionError):
        substitute(text, {'image': 'x'})


def test_variable_names_are_checked_as_flux_does():
    envsubst.check_names({'_ok': '1', 'cluster_env2': '2'})
    with pytest.raises(SubstitutionError, match=r"^'cluster-env' var name is invalid, must match "
                                                r"'\^\[_\[:alpha:\]\]\[_\[:alpha:\]\[:digit:\]\]\*\$'$"):
        envsubst.check_names({'cluster-env': 'prod'})


def test_inline_variables_win_and_later_sources_override_earlier_ones():
    merged = envsubst.merged_variables({'a': 'inline'}, [{'a': 'first', 'b': 'first', 'c': 'one\ntwo'},
                                                         {'a': 'second', 'b': 'second'}])
    assert merged == {'a': 'inline', 'b': 'second', 'c': 'onetwo'}


def test_substitution_can_be_disabled_by_label_or_annotation():
    label = {'metadata': {'labels': {'kustomize.toolkit.fluxcd.io/substitute': 'disabled'}}}
    annotation = {'metadata': {'annotations': {'kustomize.toolkit.fluxcd.io/substitute': 'disabled'}}}
    assert envsubst.substitution_disabled(label) and envsubst.substitution_disabled(annotation)
    assert not envsubst.substitution_disabled({'metadata': {'name': 'x'}})


@pytest.mark.parametrize('text, seconds', [('1m0s', 60), ('10m', 600), ('1h30m', 5400), ('500ms', 0.5),
                                           ('1.5s', 1.5)])
def test_go_durations(text, seconds):
    assert flux_objects.parse_duration(text) == seconds


@pytest.mark.parametrize('text', ['', '5', '1d', '1m junk'])
def test_invalid_durations(text):
    with pytest.raises(ValueError):
        flux_objects.parse_duration(text)


@pytest.mark.parametrize('seconds, text', [(60, '1m0s'), (30, '30s'), (1.5, '1.5s'), (0.25, '250ms'),
                                           (3725, '1h2m5s')])
def test_durations_print_as_go_does(seconds, text):
    assert flux_objects.format_duration(seconds) == text


def test_inventory_ids_round_trip():
    deployment = {'apiVersion': 'apps/v1', 'kind': 'Deployment', 'metadata': {'name': 'blog', 'namespace': 'apps'}}
    namespace = {'apiVersion': 'v1', 'kind': 'Namespace', 'metadata': {'name': 'apps'}}
    role = {'apiVersion': 'rbac.authorization.k8s.io/v1', 'kind': 'ClusterRole', 'metadata': {'name': 'system:x'}}
    assert flux_objects.inventory_entry(deployment) == {'id': 'apps_blog_apps_Deployment', 'v': 'v1'}
    assert flux_objects.inventory_entry(namespace) == {'id': '_apps__Namespace', 'v': 'v1'}
    assert flux_objects.inventory_entry(role)['id'] == '_system__x_rbac.authorization.k8s.io_ClusterRole'
    assert flux_objects.parse_object_id('apps_blog_apps_Deployment') == ('apps', 'blog', 'apps', 'Deployment')
    assert flux_objects.parse_object_id('_apps__Namespace') == ('', 'apps', '', 'Namespace')
    assert flux_objects.parse_object_id('_system__x_rbac.authorization.k8s.io_ClusterRole') == (
        '', 'system:x', 'rbac.authorization.k8s.io', 'ClusterRole')


def test_apply_stages_put_definitions_first_and_keep_order():
    def obj(api_version, kind, name):
        return {'apiVersion': api_version, 'kind': kind, 'metadata': {'name': name}}
    objects = [obj('apps/v1', 'Deployment', 'blog'), obj('example.com/v1', 'Widget', 'w'),
               obj('storage.k8s.io/v1', 'StorageClass', 'fast'), obj('v1', 'Namespace', 'apps'),
               obj('apiextensions.k8s.io/v1', 'CustomResourceDefinition', 'widgets.example.com'),
               obj('v1', 'ConfigMap', 'c')]
    stages = [[o['metadata']['name'] for o in stage] for stage in flux_objects.apply_stages(objects)]
    assert stages == [['apps', 'widgets.example.com'], ['fast'], ['blog', 'w', 'c']]


def _deployment(generation=2, **status):
    return {'apiVersion': 'apps/v1', 'kind': 'Deployment', 'metadata': {'name': 'd', 'generation': generation},
            'spec': {'replicas': 2}, 'status': status}


def test_readiness_of_workloads_and_conditions():
    ready = dict(observedGeneration=2, replicas=2, updatedReplicas=2, readyReplicas=2, availableReplicas=2)
    assert flux_objects.readiness(_deployment(**ready)) == 'Current'
    assert flux_objects.readiness(_deployment(**{**ready, 'observedGeneration': 1})) == 'InProgress'
    assert flux_objects.readiness(_deployment(**{**ready, 'availableReplicas': 1})) == 'InProgress'
    assert flux_objects.readiness(None) == 'NotFound'

    def release(status, observed=3, generation=3):
        return {'apiVersion': 'helm.toolkit.fluxcd.io/v2', 'kind': 'HelmRelease',
                'metadata': {'name': 'r', 'generation': generation},
                'status': {'observedGeneration': observed, 'conditions': [{'type': 'Ready', 'status': status}]}}
    assert flux_objects.readiness(release('True')) == 'Current'
    assert flux_objects.readiness(release('False')) == 'InProgress'
    assert flux_objects.readiness(release('True', observed=2)) == 'InProgress'
    crd = {'apiVersion': 'apiextensions.k8s.io/v1', 'kind': 'CustomResourceDefinition', 'metadata': {'name': 'c'},
           'status': {'conditions': [{'type': 'Established', 'status': 'True'}]}}
    assert flux_objects.readiness(crd) == 'Current'
    pvc = {'apiVersion': 'v1', 'kind': 'PersistentVolumeClaim', 'metadata': {'name': 'p'}, 'status': {}}
    assert flux_objects.readiness(pvc) == 'InProgress'
    assert flux_objects.readiness({'apiVersion': 'v1', 'kind': 'ConfigMap', 'metadata': {'name': 'c'}}) == 'Current'


def test_generated_kustomization_lists_manifests_and_nested_kustomizations(tmp_path):
    (tmp_path / 'b.yaml').write_text('kind: ConfigMap\n')
    (tmp_path / 'a.yml').write_text('kind: ConfigMap\n')
    (tmp_path / 'notes.txt').write_text('not a manifest\n')
    (tmp_path / 'plain').mkdir()
    (tmp_path / 'plain' / 'c.yaml').write_text('kind: ConfigMap\n')
    (tmp_path / 'overlay').mkdir()
    (tmp_path / 'overlay' / 'kustomization.yaml').write_text('resources: []\n')
    (tmp_path / 'overlay' / 'd.yaml').write_text('kind: ConfigMap\n')
    assert flux_objects.generated_resources(str(tmp_path)) == ['a.yml', 'b.yaml', 'overlay', 'plain/c.yaml']


TAGS = ['v1.0.0', 'v1.2.0', 'v1.2.5', 'v1.3.0-rc.1', 'v1.3.0', 'v2.0.0', '0.2.3', '0.2.9', '0.3.0', 'latest']


@pytest.mark.parametrize('constraint, tag', [
    ('*', 'v2.0.0'), ('1.x', 'v1.3.0'), ('>=1.0.0 <2.0.0', 'v1.3.0'), ('>=1.0.0, <1.3.0', 'v1.2.5'),
    ('~1.2', 'v1.2.5'), ('^1.2', 'v1.3.0'), ('^0.2.3', '0.2.9'), ('<=1.2', 'v1.2.5'), ('1.0.0 - 1.2.9', 'v1.2.5'),
    ('<1.0.0 || >=2.0.0', 'v2.0.0'), ('>=1.3.0-rc.0 <1.3.0', 'v1.3.0-rc.1'), ('!=2.0.0', 'v1.3.0'), ('3.x', None),
])
def test_semver_constraints_pick_the_latest_matching_tag(constraint, tag):
    assert flux_objects.latest_matching(TAGS, constraint) == tag


def test_the_kube_service_passes_kubectl_and_the_artifact_directory(tmp_path, monkeypatch):
    tools = tmp_path / 'tools'
    (tools / 'bin').mkdir(parents=True)
    service = KubeService(config.load({'CASTLE_LAB_DIR': str(tmp_path / 'lab'), 'CASTLE_LAB_TOOLS': str(tools)}))
    monkeypatch.setenv('PATH', str(tmp_path / 'empty'))
    with pytest.raises(LabError, match='kubectl is neither on PATH nor in'):
        service.kubectl()
    kubectl = tools / 'bin' / 'kubectl'
    kubectl.write_text('#!/bin/sh\n')
    kubectl.chmod(0o755)
    assert service.kubectl() == str(kubectl)
    assert service.artifacts == tmp_path / 'lab' / 'kube' / 'artifacts'


def test_artifacts_leave_out_what_flux_ignores(tmp_path):
    for name in ('deploy/app.yaml', 'deploy/logo.png', 'docs/notes.md', '.github/workflows/ci.yaml', 'README.md',
                 'deploy/.sops.yaml', 'deploy/secret.enc.yaml', 'deploy/keep.png'):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text('x')
    (tmp_path / 'deploy' / '.sourceignore').write_text('# encrypted ones stay out\n*.enc.yaml\n')
    assert flux_objects.ignored_files(str(tmp_path)) == [
        '.github/workflows/ci.yaml', 'deploy/.sops.yaml', 'deploy/keep.png', 'deploy/logo.png',
        'deploy/secret.enc.yaml']
    ignore = '/*\n!/deploy\n!/deploy/keep.png\n'
    assert flux_objects.ignored_files(str(tmp_path), ignore) == [
        '.github/workflows/ci.yaml', 'README.md', 'deploy/.sops.yaml', 'deploy/logo.png', 'deploy/secret.enc.yaml',
        'docs/notes.md']


def test_an_artifact_gone_while_it_is_read_is_a_failed_fetch(tmp_path):
    """The source controller may replace an artifact while a Kustomization copies it: a failed fetch to retry,
    as a download of a removed artifact is, never a crash of the controller."""
    controller = KustomizationController(KubeApi(), None, 'kubectl')
    obj = {'metadata': {'name': 'apps', 'namespace': 'flux-system'}, 'spec': {'path': './'}}
    with pytest.raises(Failure) as failed:
        asyncio.run(controller._build(obj, tmp_path / 'replaced-meanwhile'))
    assert failed.value.reason == 'ArtifactFailed' and 'failed to download artifact' in str(failed.value)
