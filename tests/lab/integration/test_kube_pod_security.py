"""Pod Security admission as Talos configures it (baseline enforced, restricted warned, kube-system exempt), driven by
kubectl: a privileged pod refused with the API server's message, admitted once its namespace is labelled
privileged; Longhorn's and MetalLB's pods refused in an unlabelled namespace until it is labelled."""

import json
import uuid

import pytest
import yaml

from castle_lab.kube.controllers import charts
from kube_helpers import kubectl, wait_for

pytestmark = pytest.mark.lab

PRIVILEGED_LABELS = ['pod-security.kubernetes.io/{0}=privileged'.format(mode) for mode in ('enforce', 'audit', 'warn')]


@pytest.fixture
def namespace(lab, kenv):
    name = 'psa-' + uuid.uuid4().hex[:8]
    kubectl(lab, kenv, 'create', 'namespace', name)
    yield name
    kubectl(lab, kenv, 'delete', 'namespace', name, '--wait=false', check=False)


def privileged_pod(namespace, name='priv'):
    return yaml.safe_dump({'apiVersion': 'v1', 'kind': 'Pod', 'metadata': {'name': name, 'namespace': namespace},
                           'spec': {'containers': [{'name': 'c', 'image': 'busybox',
                                                    'securityContext': {'privileged': True}}]}})


def test_privileged_pod_refused_until_the_namespace_is_privileged(lab, kenv, namespace):
    refused = kubectl(lab, kenv, 'apply', '-f', '-', stdin=privileged_pod(namespace), check=False)
    assert refused.returncode == 1
    assert 'Error from server (Forbidden): error when creating' in refused.stderr
    assert ('pods "priv" is forbidden: violates PodSecurity "baseline:latest": privileged (container "c" must not '
            'set securityContext.privileged=true)') in refused.stderr
    assert kubectl(lab, kenv, 'get', 'pods', '-n', namespace, '-o', 'name').stdout == ''

    # Enforce relaxed alone: admitted, with the default restricted level's warning.
    kubectl(lab, kenv, 'label', 'namespace', namespace, PRIVILEGED_LABELS[0])
    warned = kubectl(lab, kenv, 'apply', '-f', '-', stdin=privileged_pod(namespace))
    assert 'pod/priv created' in warned.stdout
    assert ('Warning: would violate PodSecurity "restricted:latest": privileged (container "c" must not set '
            'securityContext.privileged=true)') in warned.stderr
    kubectl(lab, kenv, 'delete', 'pod', 'priv', '-n', namespace, '--wait=false')

    kubectl(lab, kenv, 'label', '--overwrite', 'namespace', namespace, *PRIVILEGED_LABELS)
    admitted = kubectl(lab, kenv, 'create', '-f', '-', stdin=privileged_pod(namespace, 'priv2'))
    assert 'pod/priv2 created' in admitted.stdout
    assert 'Warning' not in admitted.stderr


def test_deployment_gets_the_warn_levels_warning(lab, kenv, namespace):
    kubectl(lab, kenv, 'label', 'namespace', namespace, PRIVILEGED_LABELS[0])
    labels = {'app': 'priv'}
    deployment = {'apiVersion': 'apps/v1', 'kind': 'Deployment', 'metadata': {'name': 'priv', 'namespace': namespace},
                  'spec': {'replicas': 1, 'selector': {'matchLabels': labels}, 'template': {
                      'metadata': {'labels': labels}, 'spec': yaml.safe_load(privileged_pod(namespace))['spec']}}}
    created = kubectl(lab, kenv, 'apply', '-f', '-', stdin=yaml.safe_dump(deployment))
    assert 'deployment.apps/priv created' in created.stdout
    assert 'Warning: would violate PodSecurity "restricted:latest": privileged (container "c"' in created.stderr


def test_a_deployments_refused_pods_show_as_replica_failure(lab, kenv, namespace):
    labels = {'app': 'priv'}
    deployment = {'apiVersion': 'apps/v1', 'kind': 'Deployment', 'metadata': {'name': 'priv', 'namespace': namespace},
                  'spec': {'replicas': 2, 'selector': {'matchLabels': labels}, 'template': {
                      'metadata': {'labels': labels}, 'spec': yaml.safe_load(privileged_pod(namespace))['spec']}}}
    kubectl(lab, kenv, 'apply', '-f', '-', stdin=yaml.safe_dump(deployment))

    def replica_failure():
        sets = json.loads(kubectl(lab, kenv, 'get', 'replicasets', '-n', namespace, '-o', 'json').stdout)['items']
        return [(rs['metadata']['name'], c) for rs in sets for c in (rs.get('status') or {}).get('conditions') or []
                if c['type'] == 'ReplicaFailure']
    ((replica_set, condition),) = wait_for(replica_failure, 'the ReplicaSet reports the refused pods')
    assert (condition['status'], condition['reason']) == ('True', 'FailedCreate')
    assert condition['message'].startswith('pods "{0}-" is forbidden: violates PodSecurity "baseline:latest": '
                                           'privileged'.format(replica_set))
    # The controller retries at its pace: the API keeps answering, and the condition stays as it was.
    for _attempt in range(5):
        assert kubectl(lab, kenv, 'get', 'deployment', 'priv', '-n', namespace, '-o', 'name').stdout.strip() == \
            'deployment.apps/priv'
    assert replica_failure() == [(replica_set, condition)]
    assert kubectl(lab, kenv, 'get', 'pods', '-n', namespace, '-o', 'name').stdout == ''


def chart_daemon_set(name, namespace):
    """The ServiceAccount and DaemonSet of a chart's release (`name`), as the lab's chart renders them."""
    chart = charts.CHARTS[name]
    objects = charts.render(chart, chart.versions[0], name, namespace, {}, ('flux-system', name))
    return [o for o in objects if o['kind'] in ('ServiceAccount', 'DaemonSet')]


@pytest.mark.parametrize('chart, daemon_set, violation', [
    ('longhorn', 'longhorn-manager',
     'violates PodSecurity "baseline:latest": privileged (container "longhorn-manager" must not set '
     'securityContext.privileged=true), hostPath volumes (volumes "boot", "dev", "proc", "etc", "longhorn")'),
    ('metallb', 'metallb-speaker', 'violates PodSecurity "baseline:latest": host namespaces (hostNetwork=true)'),
])
def test_chart_daemon_set_needs_a_privileged_namespace(lab, kenv, namespace, chart, daemon_set, violation):
    objects = chart_daemon_set(chart, namespace)
    kubectl(lab, kenv, 'apply', '--server-side', '-f', '-', stdin=yaml.safe_dump_all(objects))

    def failed_create():
        events = json.loads(kubectl(lab, kenv, 'get', 'events', '-n', namespace, '-o', 'json').stdout)['items']
        return [e['message'] for e in events if e['reason'] == 'FailedCreate'
                and e['involvedObject']['name'] == daemon_set]
    message = wait_for(failed_create, 'the refused pod reported on the DaemonSet')[0]
    # Admission names the pod by its generateName: its name is not generated yet.
    assert message.startswith('Error creating: pods "{0}-" is forbidden: '.format(daemon_set))
    assert violation in message

    def status():
        return json.loads(kubectl(lab, kenv, 'get', 'daemonset', daemon_set, '-n', namespace, '-o', 'json').stdout
                          ).get('status') or {}
    assert not status().get('numberReady')
    assert kubectl(lab, kenv, 'get', 'pods', '-n', namespace, '-o', 'name').stdout == ''

    kubectl(lab, kenv, 'label', 'namespace', namespace, *PRIVILEGED_LABELS)
    wait_for(lambda: status().get('numberReady') and status()['numberReady'] == status()['desiredNumberScheduled'],
             'the DaemonSet ready once its namespace is privileged', timeout=30)
