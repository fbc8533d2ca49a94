"""The lab's workload model through real kubectl: `rollout undo` reuses the old ReplicaSet, `drain` cordons a node and
evicts its pods (a PodDisruptionBudget holding one back until it allows), and a pod whose image cannot be pulled
shows ErrImagePull, as the control API's fault says."""

import json
import uuid

import pytest
import yaml

from castle_lab.control import KubeControl
from kube_helpers import kubectl, scratch_namespace, wait_for

pytestmark = pytest.mark.lab


@pytest.fixture
def namespace(core):
    yield from scratch_namespace(core, 'kw')


@pytest.fixture
def control(kenv):
    found = KubeControl(kenv['CASTLE_LAB_KUBE_CONTROL'])
    yield found
    found.clear_failures()


def get_json(lab, kenv, *args):
    return json.loads(kubectl(lab, kenv, 'get', *args, '-o', 'json').stdout)


def apply(lab, kenv, *objects):
    kubectl(lab, kenv, 'apply', '-f', '-', stdin=yaml.safe_dump_all(objects))


def deployment(name, namespace, image, replicas=1, node=None):
    labels = {'app': name}
    spec = {'containers': [{'name': 'app', 'image': image}]}
    if node:
        spec['nodeSelector'] = {'kubernetes.io/hostname': node}
    return {'apiVersion': 'apps/v1', 'kind': 'Deployment', 'metadata': {'name': name, 'namespace': namespace},
            'spec': {'replicas': replicas, 'selector': {'matchLabels': labels},
                     'template': {'metadata': {'labels': labels}, 'spec': spec}}}


def revisions(lab, kenv, namespace):
    return {rs['metadata']['name']: (rs['metadata']['annotations']['deployment.kubernetes.io/revision'],
                                     rs['spec']['replicas'])
            for rs in get_json(lab, kenv, 'replicasets', '-n', namespace)['items']}


def test_rollout_undo_reuses_the_old_replica_set(lab, kenv, namespace):
    apply(lab, kenv, deployment('web', namespace, 'nginx:1.27'))
    kubectl(lab, kenv, 'rollout', 'status', '-n', namespace, 'deployment/web', '--timeout=20s')
    [first] = revisions(lab, kenv, namespace)
    kubectl(lab, kenv, 'set', 'image', '-n', namespace, 'deployment/web', 'app=nginx:1.28')
    kubectl(lab, kenv, 'rollout', 'status', '-n', namespace, 'deployment/web', '--timeout=20s')
    [second] = [name for name in revisions(lab, kenv, namespace) if name != first]
    assert revisions(lab, kenv, namespace) == {first: ('1', 0), second: ('2', 1)}

    undone = kubectl(lab, kenv, 'rollout', 'undo', '-n', namespace, 'deployment/web')
    assert 'rolled back' in undone.stdout
    kubectl(lab, kenv, 'rollout', 'status', '-n', namespace, 'deployment/web', '--timeout=20s')
    wait_for(lambda: revisions(lab, kenv, namespace) == {first: ('3', 1), second: ('2', 0)},
             'the first ReplicaSet scaled back up as revision 3')
    history = kubectl(lab, kenv, 'rollout', 'history', '-n', namespace, 'deployment/web').stdout
    assert [line.split()[0] for line in history.splitlines()[2:] if line.strip()] == ['2', '3']
    found = get_json(lab, kenv, 'deployment/web', '-n', namespace)
    assert found['metadata']['annotations']['deployment.kubernetes.io/revision'] == '3'
    assert found['spec']['template']['spec']['containers'][0]['image'] == 'nginx:1.27'


@pytest.fixture
def node(lab, kenv, core):
    """A second node of the lab (its kubelet posts Ready), deleted afterwards."""
    name = 'worker-' + uuid.uuid4().hex[:6]
    core.create_node({'metadata': {'name': name, 'labels': {'kubernetes.io/hostname': name}}})
    core.patch_node_status(name, {'status': {'conditions': [
        {'type': 'Ready', 'status': 'True', 'reason': 'KubeletReady', 'message': 'kubelet is posting ready status'}],
        'addresses': [{'type': 'InternalIP', 'address': '10.0.0.9'}]}})
    yield name
    core.delete_node(name)


def pods_on(core, namespace, node):
    return sorted(p.metadata.name for p in core.list_namespaced_pod(namespace).items if p.spec.node_name == node)


def test_kubectl_drain_cordons_the_node_and_evicts_its_pods_within_the_disruption_budget(lab, kenv, core,
                                                                                         namespace, node):
    apply(lab, kenv, deployment('pinned', namespace, 'nginx:1.27', replicas=2, node=node),
          {'apiVersion': 'policy/v1', 'kind': 'PodDisruptionBudget',
           'metadata': {'name': 'pinned', 'namespace': namespace},
           'spec': {'minAvailable': 2, 'selector': {'matchLabels': {'app': 'pinned'}}}})
    kubectl(lab, kenv, 'rollout', 'status', '-n', namespace, 'deployment/pinned', '--timeout=20s')
    before = pods_on(core, namespace, node)
    assert len(before) == 2

    # The budget allows no disruption: drain gives up after its timeout, with the node cordoned.
    refused = kubectl(lab, kenv, 'drain', node, '--ignore-daemonsets', '--delete-emptydir-data', '--timeout=3s',
                      check=False)
    assert refused.returncode != 0
    assert "Cannot evict pod as it would violate the pod's disruption budget." in refused.stderr + refused.stdout
    found = core.read_node(node)
    assert found.spec.unschedulable is True
    assert [(t.key, t.effect) for t in found.spec.taints] == [('node.kubernetes.io/unschedulable', 'NoSchedule')]

    kubectl(lab, kenv, 'patch', 'pdb', 'pinned', '-n', namespace, '--type=merge', '-p', '{"spec":{"minAvailable":0}}')
    drained = kubectl(lab, kenv, 'drain', node, '--ignore-daemonsets', '--delete-emptydir-data', '--timeout=20s')
    assert 'evicted' in drained.stdout and 'drained' in drained.stdout
    assert pods_on(core, namespace, node) == []
    # The replacements cannot go back to the cordoned node (nor anywhere their selector allows): Pending.
    pending = wait_for(lambda: [p for p in core.list_namespaced_pod(namespace).items if p.status.phase == 'Pending'
                                and p.status.conditions], 'replacement pods reported unschedulable')
    scheduled = next(c for c in pending[0].status.conditions if c.type == 'PodScheduled')
    assert scheduled.reason == 'Unschedulable' and 'node(s)' in scheduled.message

    kubectl(lab, kenv, 'uncordon', node)
    wait_for(lambda: len(pods_on(core, namespace, node)) == 2, 'pods back on the uncordoned node')
    assert core.read_node(node).spec.taints is None


def test_a_pod_whose_image_cannot_be_pulled_shows_err_image_pull(lab, kenv, core, namespace, control):
    control.workload_fault(namespace, 'Deployment', 'broken', 'image-pull')
    apply(lab, kenv, deployment('broken', namespace, 'registry.example/broken:nope'))
    pods = wait_for(lambda: core.list_namespaced_pod(namespace, label_selector='app=broken').items, 'a pod')
    reasons = {'ErrImagePull', 'ImagePullBackOff'}
    pod = wait_for(lambda: [p for p in core.list_namespaced_pod(namespace, label_selector='app=broken').items
                            if p.status.container_statuses and p.status.container_statuses[0].state.waiting],
                   'the pod waiting for its image')[0]
    assert pod.status.phase == 'Pending' and pod.status.container_statuses[0].state.waiting.reason in reasons
    events = kubectl(lab, kenv, 'get', 'events', '-n', namespace, '--field-selector',
                     'involvedObject.name={0}'.format(pods[0].metadata.name), '-o', 'json').stdout
    assert 'Error: ErrImagePull' in [e['message'] for e in json.loads(events)['items']]
    status = kubectl(lab, kenv, 'rollout', 'status', '-n', namespace, 'deployment/broken', '--timeout=2s', check=False)
    assert status.returncode != 0

    # The fault cleared, the image pulls and the rollout completes.
    control.workload_fault(namespace, 'Deployment', 'broken', None)
    kubectl(lab, kenv, 'rollout', 'status', '-n', namespace, 'deployment/broken', '--timeout=20s')


def test_the_default_namespace_holds_the_kubernetes_service(lab, kenv, core):
    service = core.read_namespaced_service('kubernetes', 'default')
    assert service.spec.cluster_ip == '10.96.0.1' and service.spec.ports[0].port == 443
    slices = get_json(lab, kenv, 'endpointslices', '-n', 'default', '-l', 'kubernetes.io/service-name=kubernetes')
    [address] = slices['items'][0]['endpoints'][0]['addresses']
    server = kubectl(lab, kenv, 'config', 'view', '--minify', '-o', 'jsonpath={.clusters[0].cluster.server}').stdout
    assert server == 'https://{0}:{1}'.format(address, slices['items'][0]['ports'][0]['port'])


def test_kubernetes_core_k8s_drain_drains_and_uncordons_a_node(lab, kenv, core, namespace, node):
    apply(lab, kenv, deployment('pinned', namespace, 'nginx:1.27', node=node))
    kubectl(lab, kenv, 'rollout', 'status', '-n', namespace, 'deployment/pinned', '--timeout=20s')

    def k8s_drain(state):
        args = {'kubeconfig': kenv['KUBECONFIG'], 'name': node, 'state': state,
                'delete_options': {'ignore_daemonsets': True, 'delete_emptydir_data': True, 'wait_timeout': 20}}
        out = lab.run('ansible', 'localhost', '-m', 'kubernetes.core.k8s_drain', '-a', json.dumps(args), env=kenv)
        return json.loads(out.stdout.split('=>', 1)[1])

    drained = k8s_drain('drain')
    assert drained['changed'] is True, drained
    assert core.read_node(node).spec.unschedulable is True and pods_on(core, namespace, node) == []
    assert k8s_drain('uncordon')['changed'] is True
    assert not core.read_node(node).spec.unschedulable
