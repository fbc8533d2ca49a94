"""The Flux install manifest the lab publishes."""

import yaml

from castle_lab.git import flux_manifest
from castle_lab.kube import upstream_crds

FLUX_CRDS = {'gitrepositories.source.toolkit.fluxcd.io', 'helmrepositories.source.toolkit.fluxcd.io',
             'helmcharts.source.toolkit.fluxcd.io', 'ocirepositories.source.toolkit.fluxcd.io',
             'kustomizations.kustomize.toolkit.fluxcd.io', 'helmreleases.helm.toolkit.fluxcd.io'}
PART_OF = {'app.kubernetes.io/instance': 'flux-system', 'app.kubernetes.io/part-of': 'flux',
           'app.kubernetes.io/version': 'v2.9.1'}


def loaded():
    return list(yaml.safe_load_all(flux_manifest.render()))


def of_kind(objects, kind):
    return {obj['metadata']['name']: obj for obj in objects if obj['kind'] == kind}


def test_manifest_loads_as_the_objects_it_is_built_from():
    assert loaded() == flux_manifest.objects()
    assert flux_manifest.VERSION == 'v2.9.1'


def test_namespace_and_crds_come_first():
    kinds = [obj['kind'] for obj in loaded()]
    assert kinds[0] == 'Namespace'
    assert kinds[1:7] == ['CustomResourceDefinition'] * 6


def test_every_object_carries_the_flux_labels():
    for obj in loaded():
        labels = obj['metadata']['labels']
        assert {key: labels.get(key) for key in PART_OF} == PART_OF, obj['metadata']['name']


def test_every_flux_crd_is_the_bundled_one_and_no_other_crd_is_shipped():
    crds = of_kind(loaded(), 'CustomResourceDefinition')
    assert set(crds) == FLUX_CRDS
    for name, crd in crds.items():
        bundled = upstream_crds.bundled_crd(name)
        labels = crd['metadata'].pop('labels')
        assert labels['app.kubernetes.io/component'] == flux_manifest.CRDS_OWNER[name]
        assert crd == bundled


def test_controllers_run_the_release_images_under_their_own_service_accounts():
    objects = loaded()
    deployments = of_kind(objects, 'Deployment')
    assert set(deployments) == {'source-controller', 'kustomize-controller', 'helm-controller'}
    tags = {'source-controller': 'v1.9.1', 'kustomize-controller': 'v1.9.4', 'helm-controller': 'v1.6.3'}
    accounts = of_kind(objects, 'ServiceAccount')
    for name, deployment in deployments.items():
        assert deployment['metadata']['namespace'] == 'flux-system'
        assert deployment['metadata']['labels']['app'] == name
        assert deployment['metadata']['labels']['control-plane'] == 'controller'
        pod = deployment['spec']['template']
        assert deployment['spec']['selector']['matchLabels'] == {'app': name}
        assert pod['metadata']['labels']['app'] == name
        assert pod['spec']['containers'][0]['image'] == 'ghcr.io/fluxcd/{0}:{1}'.format(name, tags[name])
        assert pod['spec']['serviceAccountName'] in accounts


def test_reconcilers_are_cluster_admins_and_source_controller_serves_artifacts():
    objects = loaded()
    bindings = of_kind(objects, 'ClusterRoleBinding')
    reconciler = bindings['cluster-reconciler-flux-system']
    assert reconciler['roleRef']['name'] == 'cluster-admin'
    assert {s['name'] for s in reconciler['subjects']} == {'kustomize-controller', 'helm-controller'}
    role = bindings['crd-controller-flux-system']['roleRef']['name']
    assert role in of_kind(objects, 'ClusterRole')
    service = of_kind(objects, 'Service')['source-controller']
    assert service['spec']['selector'] == {'app': 'source-controller'}
    assert service['spec']['ports'] == [{'name': 'http', 'port': 80, 'protocol': 'TCP', 'targetPort': 'http'}]
    container = of_kind(objects, 'Deployment')['source-controller']['spec']['template']['spec']['containers'][0]
    assert {'containerPort': 9090, 'name': 'http', 'protocol': 'TCP'} in container['ports']
