"""The Helm charts the lab can install, and the objects each renders for a release.

The lab downloads nothing: a chart here is what it puts in the cluster, shaped as the upstream
chart renders it (names, Helm's labels and ownership annotations). CRDs come from the bundled ones.
"""

import copy
from dataclasses import dataclass, field

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
    # What the chart's template sets besides: the main container's fields (securityContext, ports) and the pod
    # spec's (host namespaces, volumes, more containers), as the upstream template renders them by default.
    container: dict = field(default_factory=dict, compare=False)
    pod: dict = field(default_factory=dict, compare=False)


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
    # Whether the chart renders Longhorn's longhorn-default-resource ConfigMap (defaultBackupStore values).
    default_resource: bool = False

    def crd_names(self):
        return [name for name in bundled_crd_names() if name.endswith('.' + self.crd_group)]


# MetalLB's speaker (charts/metallb/templates/speaker.yaml, FRR mode, the chart's default): host network, NET_RAW
# for the speaker, NET_ADMIN, NET_RAW, SYS_ADMIN and NET_BIND_SERVICE for FRR.
FRR_IMAGE = 'quay.io/frrouting/frr:9.1.0'
SPEAKER_CONTAINER = {
    'ports': [{'name': 'monitoring', 'containerPort': 7472},
              {'name': 'memberlist-tcp', 'containerPort': 7946, 'protocol': 'TCP'},
              {'name': 'memberlist-udp', 'containerPort': 7946, 'protocol': 'UDP'}],
    'securityContext': {'allowPrivilegeEscalation': False, 'readOnlyRootFilesystem': True,
                        'capabilities': {'drop': ['ALL'], 'add': ['NET_RAW']}}}
SPEAKER_POD = {
    'hostNetwork': True, 'shareProcessNamespace': True, 'terminationGracePeriodSeconds': 0,
    'volumes': [{'name': 'frr-sockets', 'emptyDir': {}},
                {'name': 'frr-startup', 'configMap': {'name': '{fullname}-frr-startup'}},
                {'name': 'frr-conf', 'emptyDir': {}}, {'name': 'reloader', 'emptyDir': {}},
                {'name': 'metrics', 'emptyDir': {}}],
    'initContainers': [{'name': 'cp-frr-files', 'image': FRR_IMAGE,
                        'securityContext': {'runAsUser': 100, 'runAsGroup': 101}},
                       {'name': 'cp-reloader', 'image': '{image}'}, {'name': 'cp-metrics', 'image': '{image}'}],
    'containers': [{'name': 'frr', 'image': FRR_IMAGE, 'securityContext': {'capabilities': {
                        'add': ['NET_ADMIN', 'NET_RAW', 'SYS_ADMIN', 'NET_BIND_SERVICE']}}},
                   {'name': 'reloader', 'image': FRR_IMAGE},
                   {'name': 'frr-metrics', 'image': FRR_IMAGE,
                    'ports': [{'name': 'monitoring', 'containerPort': 7473}]}]}
# MetalLB's controller runs as nobody with nothing added.
METALLB_CONTROLLER_CONTAINER = {
    'ports': [{'name': 'monitoring', 'containerPort': 7472}, {'name': 'webhook-server', 'containerPort': 9443}],
    'securityContext': {'allowPrivilegeEscalation': False, 'readOnlyRootFilesystem': True,
                        'capabilities': {'drop': ['ALL']}}}
METALLB_CONTROLLER_POD = {'securityContext': {'runAsNonRoot': True, 'runAsUser': 65534, 'fsGroup': 65534}}
# External Secrets' containers (the chart's default securityContext) meet the restricted level.
ESO_CONTAINER = {'securityContext': {
    'allowPrivilegeEscalation': False, 'capabilities': {'drop': ['ALL']}, 'readOnlyRootFilesystem': True,
    'runAsNonRoot': True, 'runAsUser': 1000, 'seccompProfile': {'type': 'RuntimeDefault'}}}
# longhorn-manager (chart/templates/daemonset-sa.yaml): privileged, with the host's /boot, /dev, /proc, /etc and
# its data path mounted.
LONGHORN_MANAGER_CONTAINER = {
    'name': 'longhorn-manager', 'securityContext': {'privileged': True},
    'ports': [{'name': 'manager', 'containerPort': 9500}, {'name': 'admission-wh', 'containerPort': 9502},
              {'name': 'recov-backend', 'containerPort': 9503}]}
LONGHORN_MANAGER_POD = {
    'volumes': [{'name': 'boot', 'hostPath': {'path': '/boot/'}}, {'name': 'dev', 'hostPath': {'path': '/dev/'}},
                {'name': 'proc', 'hostPath': {'path': '/proc/'}}, {'name': 'etc', 'hostPath': {'path': '/etc/'}},
                {'name': 'longhorn', 'hostPath': {'path': '/var/lib/longhorn/'}},
                {'name': 'longhorn-grpc-tls', 'secret': {'secretName': 'longhorn-grpc-tls', 'optional': True}}],
    'containers': [{'name': 'pre-pull-share-manager-image',
                    'image': 'longhornio/longhorn-share-manager:{app_version}'}]}

CHARTS = {chart.name: chart for chart in (
    Chart('external-secrets', ('2.9.0',), 'external-secrets.io', (
        Workload('Deployment', '{fullname}', 'controller',
                 'ghcr.io/external-secrets/external-secrets:{app_version}', ESO_CONTAINER),
        Workload('Deployment', '{fullname}-cert-controller', 'cert-controller',
                 'ghcr.io/external-secrets/external-secrets:{app_version}', ESO_CONTAINER),
        Workload('Deployment', '{fullname}-webhook', 'webhook',
                 'ghcr.io/external-secrets/external-secrets:{app_version}', ESO_CONTAINER)),
        crd_switch=('installCRDs',)),
    Chart('metallb', ('0.15.2', '0.14.9', '0.13.12'), 'metallb.io', (
        Workload('Deployment', '{fullname}-controller', 'controller', 'quay.io/metallb/controller:{app_version}',
                 METALLB_CONTROLLER_CONTAINER, METALLB_CONTROLLER_POD),
        Workload('DaemonSet', '{fullname}-speaker', 'speaker', 'quay.io/metallb/speaker:{app_version}',
                 SPEAKER_CONTAINER, SPEAKER_POD)),
        crd_switch=('crds', 'enabled')),
    Chart('longhorn', ('1.10.1', '1.9.1'), 'longhorn.io', (
        Workload('DaemonSet', 'longhorn-manager', 'manager', 'longhornio/longhorn-manager:{app_version}',
                 LONGHORN_MANAGER_CONTAINER, LONGHORN_MANAGER_POD),
        Workload('Deployment', 'longhorn-driver-deployer', 'driver-deployer',
                 'longhornio/longhorn-manager:{app_version}'),
        Workload('Deployment', 'longhorn-ui', 'ui', 'longhornio/longhorn-ui:{app_version}')),
        storage_class=True, default_resource=True),
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


def _filled(value, names):
    """A template fragment with its '{fullname}', '{image}' and '{app_version}' placeholders filled."""
    if isinstance(value, dict):
        return {k: _filled(v, names) for k, v in value.items()}
    if isinstance(value, list):
        return [_filled(v, names) for v in value]
    return value.format(**names) if isinstance(value, str) else copy.deepcopy(value)


def _workload(chart, version, release, namespace, workload, owner):
    fullname = full_name(release, chart.name)
    name = workload.name.format(fullname=fullname)
    names = {'fullname': fullname, 'app_version': app_version(version)}
    names['image'] = workload.image.format(**names)
    selector = {'app.kubernetes.io/name': chart.name, 'app.kubernetes.io/instance': release,
                'app.kubernetes.io/component': workload.component}
    pod = _filled(workload.pod, names)
    main = dict({'name': workload.component, 'image': names['image']}, **_filled(workload.container, names))
    pod_spec = dict(pod, serviceAccountName=fullname, containers=[main] + pod.get('containers', []))
    spec = {'selector': {'matchLabels': selector},
            'template': {'metadata': {'labels': dict(selector)}, 'spec': pod_spec}}
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


# chart/templates/default-resource.yaml: each defaultBackupStore value that is set, under the setting's name.
DEFAULT_RESOURCE_KEYS = (('backupTarget', 'backup-target'),
                         ('backupTargetCredentialSecret', 'backup-target-credential-secret'),
                         ('pollInterval', 'backupstore-poll-interval'))


def _default_resource(chart, version, release, namespace, values, owner):
    """Longhorn's longhorn-default-resource ConfigMap, from which longhorn-manager sets the default BackupTarget."""
    store = value(values, ('defaultBackupStore',), None) or {}
    lines = ['{0}: {1}'.format(setting, store[key]) for key, setting in DEFAULT_RESOURCE_KEYS
             if store.get(key) is not None]
    meta = helm_metadata(chart, version, release, namespace, 'longhorn-default-resource', '', owner)
    return {'apiVersion': 'v1', 'kind': 'ConfigMap', 'metadata': meta,
            'data': {'default-resource.yaml': '\n'.join(lines)}}


def render(chart, version, release, namespace, values, owner):
    """The templated objects of a release (CRDs apart); owner is the HelmRelease's (namespace, name)."""
    service_account = {'apiVersion': 'v1', 'kind': 'ServiceAccount', 'metadata': helm_metadata(
        chart, version, release, namespace, full_name(release, chart.name), '', owner)}
    objects = [service_account] + [_workload(chart, version, release, namespace, w, owner) for w in chart.workloads]
    if chart.storage_class:
        objects.append(_storage_class(chart, version, release, namespace, values, owner))
    if chart.default_resource:
        objects.append(_default_resource(chart, version, release, namespace, values, owner))
    return objects
