"""The Helm charts the lab can install, and the objects each renders for a release.

The lab downloads nothing: a chart here is what it puts in the cluster, shaped as the upstream
chart renders it (names, Helm's labels and ownership annotations). CRDs come from the bundled ones.
"""

from dataclasses import dataclass

from ..upstream_crds import bundled_crd, bundled_crd_names

LONGHORN_PROVISIONER = 'driver.longhorn.io'


@dataclass(frozen=True)
class Workload:
    kind: str
    # The object's name, from the release's full name (e.g. '{fullname}-webhook') or fixed.
    name: str
    component: str
    # The image, tagged with the chart's app version ('{app_version}').
    image: str


@dataclass(frozen=True)
class Chart:
    name: str
    # The versions the lab serves, newest first; each chart's app version is 'v' + its version.
    versions: tuple
    crd_group: str
    workloads: tuple
    # Values path of the switch that turns CRD installation off, if the chart has one.
    crd_switch: tuple = ()
    storage_class: bool = False

    def crd_names(self):
        return [name for name in bundled_crd_names() if name.endswith('.' + self.crd_group)]


CHARTS = {chart.name: chart for chart in (
    Chart('external-secrets', ('2.9.0',), 'external-secrets.io', (
        Workload('Deployment', '{fullname}', 'controller', 'ghcr.io/external-secrets/external-secrets:{app_version}'),
        Workload('Deployment', '{fullname}-cert-controller', 'cert-controller',
                 'ghcr.io/external-secrets/external-secrets:{app_version}'),
        Workload('Deployment', '{fullname}-webhook', 'webhook',
                 'ghcr.io/external-secrets/external-secrets:{app_version}')),
        crd_switch=('installCRDs',)),
    Chart('metallb', ('0.15.2', '0.14.9', '0.13.12'), 'metallb.io', (
        Workload('Deployment', '{fullname}-controller', 'controller', 'quay.io/metallb/controller:{app_version}'),
        Workload('DaemonSet', '{fullname}-speaker', 'speaker', 'quay.io/metallb/speaker:{app_version}')),
        crd_switch=('crds', 'enabled')),
    Chart('longhorn', ('1.10.1', '1.9.1'), 'longhorn.io', (
        Workload('DaemonSet', 'longhorn-manager', 'manager', 'longhornio/longhorn-manager:{app_version}'),
        Workload('Deployment', 'longhorn-driver-deployer', 'driver-deployer',
                 'longhornio/longhorn-manager:{app_version}'),
        Workload('Deployment', 'longhorn-ui', 'ui', 'longhornio/longhorn-ui:{app_version}')),
        storage_class=True),
)}


def app_version(version):
    return 'v' + version


def full_name(release, chart):
    """Helm's conventional fullname template: the release name if it holds the chart name."""
    name = release if chart in release else '{0}-{1}'.format(release, chart)
    return name[:63].rstrip('-')


def value(values, path, default):
    for key in path:
        if not isinstance(values, dict) or key not in values:
            return default
        values = values[key]
    return values


def crds(chart, values):
    """The CRDs a release of `chart` brings, unless its values turn them off."""
    if chart.crd_switch and not value(values, chart.crd_switch, True):
        return []
    return [bundled_crd(name) for name in chart.crd_names()]


def helm_metadata(chart, version, release, namespace, name, component, owner):
    """Metadata Helm and helm-controller give every object of a release."""
    labels = {'app.kubernetes.io/name': chart.name, 'app.kubernetes.io/instance': release,
              'app.kubernetes.io/version': app_version(version), 'app.kubernetes.io/managed-by': 'Helm',
              'helm.sh/chart': '{0}-{1}'.format(chart.name, version),
              'helm.toolkit.fluxcd.io/name': owner[1], 'helm.toolkit.fluxcd.io/namespace': owner[0]}
    if component:
        labels['app.kubernetes.io/component'] = component
    meta = {'name': name, 'labels': labels,
            'annotations': {'meta.helm.sh/release-name': release, 'meta.helm.sh/release-namespace': namespace}}
    if namespace is not None:
        meta['namespace'] = namespace
    return meta


def _workload(chart, version, release, namespace, workload, owner):
    name = workload.name.format(fullname=full_name(release, chart.name))
    selector = {'app.kubernetes.io/name': chart.name, 'app.kubernetes.io/instance': release,
                'app.kubernetes.io/component': workload.component}
    spec = {'selector': {'matchLabels': selector},
            'template': {'metadata': {'labels': dict(selector)},
                         'spec': {'serviceAccountName': full_name(release, chart.name),
                                  'containers': [{'name': workload.component,
                                                  'image': workload.image.format(app_version=app_version(version))}]}}}
    if workload.kind == 'Deployment':
        spec['replicas'] = 1
    return {'apiVersion': 'apps/v1', 'kind': workload.kind,
            'metadata': helm_metadata(chart, version, release, namespace, name, workload.component, owner),
            'spec': spec}


def _storage_class(chart, version, release, namespace, values, owner):
    """Longhorn's StorageClass, default unless persistence.defaultClass is false."""
    meta = helm_metadata(chart, version, release, namespace, 'longhorn', '', owner)
    del meta['namespace']
    default = value(values, ('persistence', 'defaultClass'), True)
    meta['annotations']['storageclass.kubernetes.io/is-default-class'] = 'true' if default else 'false'
    replicas = value(values, ('persistence', 'defaultClassReplicaCount'), 3)
    return {'apiVersion': 'storage.k8s.io/v1', 'kind': 'StorageClass', 'metadata': meta,
            'provisioner': LONGHORN_PROVISIONER, 'allowVolumeExpansion': True, 'reclaimPolicy': 'Delete',
            'volumeBindingMode': 'Immediate',
            'parameters': {'numberOfReplicas': str(replicas), 'staleReplicaTimeout': '30', 'fromBackup': '',
                           'fsType': 'ext4', 'dataLocality': 'disabled'}}


def render(chart, version, release, namespace, values, owner):
    """The templated objects of a release (CRDs apart); owner is the HelmRelease's (namespace, name)."""
    service_account = {'apiVersion': 'v1', 'kind': 'ServiceAccount', 'metadata': helm_metadata(
        chart, version, release, namespace, full_name(release, chart.name), '', owner)}
    objects = [service_account] + [_workload(chart, version, release, namespace, w, owner) for w in chart.workloads]
    if chart.storage_class:
        objects.append(_storage_class(chart, version, release, namespace, values, owner))
    return objects
