"""Longhorn on Talos needs the siderolabs/iscsi-tools extension. A worker installed with the stock installer runs
no extensions: with Longhorn installed, its longhorn.io Node reports iscsiadm missing and a pod there using a Longhorn
volume stays Pending with a FailedAttachVolume event, while the same on the control plane (factory installer with
iscsi-tools) gets no such event."""

import json
import subprocess

import pytest
import yaml
from castle_lab.kube.controllers import charts
from castle_lab.talos import factory
from talos_helpers import talos_vms, until

from conftest import VENV_BIN

pytestmark = pytest.mark.lab


def test_longhorn_refuses_volumes_on_a_talos_node_without_iscsi_tools(env, pve, tmp_path):
    sid = factory.schematic_id(factory.marshal(factory.default_schematic()))
    host = env['CASTLE_LAB_FACTORY_URL'].split('://', 1)[1]
    run_env = dict(env, TALOSCONFIG=str(tmp_path / 'talosconfig'), HOME=str(tmp_path),
                   PATH='{0}:{1}'.format(VENV_BIN, env['PATH']))

    def run(*argv, stdin=None):
        result = subprocess.run(argv, env=run_env, cwd=tmp_path, capture_output=True, text=True, timeout=120,
                                check=False, input=stdin)
        assert result.returncode == 0, result.stderr
        return result.stdout

    def kubectl(*args, stdin=None):
        return run('kubectl', '--kubeconfig', str(tmp_path / 'kubeconfig'), *args, stdin=stdin)

    with talos_vms(pve, 'longhorn') as machines:
        cp, worker = machines['addresses']['cp'], machines['addresses']['worker']
        run('talosctl', 'gen', 'secrets', '-o', 'secrets.yaml')
        run('talosctl', 'gen', 'config', 'lh', 'https://{0}:6443'.format(cp), '--with-secrets', 'secrets.yaml',
            '--install-image', '{0}/metal-installer/{1}:v1.11.6'.format(host, sid),
            '--config-patch-worker', json.dumps({'machine': {'install': {
                'image': 'ghcr.io/siderolabs/installer:v1.11.6'}}}),
            '--output-types', 'controlplane,worker,talosconfig', '-o', '.')
        run('talosctl', 'apply-config', '--insecure', '-n', cp, '--file', 'controlplane.yaml')
        run('talosctl', 'apply-config', '--insecure', '-n', worker, '--file', 'worker.yaml')
        until(lambda: 'iscsi-tools' in run('talosctl', 'get', 'extensions', '-n', cp, '-e', cp),
              'the control plane installed with the factory installer')
        run('talosctl', 'bootstrap', '-n', cp, '-e', cp)
        run('talosctl', 'kubeconfig', '-n', cp, '-e', cp, str(tmp_path / 'kubeconfig'))

        def both_registered():
            """{address: Node name} once both nodes are Nodes, else None."""
            nodes = json.loads(kubectl('get', 'nodes', '-o', 'json'))['items']
            found = {a['address']: n['metadata']['name'] for n in nodes for a in n['status'].get('addresses', [])
                     if a['type'] == 'InternalIP'}
            return found if {cp, worker} <= set(found) else None
        names = until(both_registered, 'both nodes registered')

        # Longhorn's chart as Helm would install it: its CRDs, then its templated objects.
        chart = charts.CHARTS['longhorn']
        crds = charts.crds(chart, {})
        kubectl('apply', '--server-side', '-f', '-', stdin=yaml.safe_dump_all(crds))
        kubectl('wait', '--for=condition=Established', '--timeout=60s',
                *['crd/' + crd['metadata']['name'] for crd in crds])
        kubectl('create', 'namespace', 'longhorn-system')
        objects = charts.render(chart, '1.10.1', 'longhorn', 'longhorn-system', {}, ('flux-system', 'longhorn'))
        kubectl('apply', '--server-side', '-f', '-', stdin=yaml.safe_dump_all(objects))

        def refused_manager():
            events = json.loads(kubectl('get', 'events', '-n', 'longhorn-system', '-o', 'json'))['items']
            return [e['message'] for e in events if e['reason'] == 'FailedCreate'
                    and e['involvedObject']['name'] == 'longhorn-manager']
        # The cluster's API runs the PodSecurity configuration of its machine config (Talos's: baseline enforced),
        # which refuses the privileged manager until its namespace is labelled as the foundation role labels it.
        assert 'violates PodSecurity "baseline:latest": privileged' in until(refused_manager, 'the refused manager')[0]
        privileged = ['pod-security.kubernetes.io/{0}=privileged'.format(mode) for mode in ('enforce', 'audit', 'warn')]
        kubectl('label', 'namespace', 'longhorn-system', *privileged)

        def required_packages(node):
            return until(lambda: kubectl(
                'get', 'nodes.longhorn.io', '-n', 'longhorn-system', node, '--ignore-not-found', '-o',
                'jsonpath={.status.conditions[?(@.type=="RequiredPackages")].message}') or None,
                'the Longhorn node of {0}'.format(node))
        assert required_packages(names[worker]) == 'Missing packages: [iscsiadm]'
        assert required_packages(names[cp]).startswith('All required packages')

        for role, address in (('cp', cp), ('worker', worker)):
            kubectl('apply', '--server-side', '-f', '-', stdin=yaml.safe_dump_all([
                {'apiVersion': 'v1', 'kind': 'PersistentVolumeClaim', 'metadata': {'name': 'data-' + role},
                 'spec': {'storageClassName': 'longhorn', 'accessModes': ['ReadWriteOnce'],
                          'resources': {'requests': {'storage': '1Gi'}}}},
                {'apiVersion': 'v1', 'kind': 'Pod', 'metadata': {'name': 'app-' + role},
                 'spec': {'nodeName': names[address], 'containers': [{'name': 'app', 'image': 'busybox'}],
                          'volumes': [{'name': 'data', 'persistentVolumeClaim': {'claimName': 'data-' + role}}]}}]))

        def attach_failures(pod):
            return kubectl('get', 'events', '--field-selector', 'involvedObject.name={0},reason=FailedAttachVolume'
                           .format(pod), '-o', 'jsonpath={.items[*].message}')
        message = until(lambda: attach_failures('app-worker') or None, 'the worker pod failing to attach')
        volume = kubectl('get', 'pvc', 'data-worker', '-o', 'jsonpath={.spec.volumeName}')
        assert message.startswith('AttachVolume.Attach failed for volume "{0}"'.format(volume))
        assert 'iscsiadm' in message
        assert kubectl('get', 'pod', 'app-worker', '-o', 'jsonpath={.status.phase}') == 'Pending'
        assert kubectl('get', 'pvc', 'data-cp', '-o', 'jsonpath={.status.phase}') == 'Bound'
        assert attach_failures('app-cp') == ''
