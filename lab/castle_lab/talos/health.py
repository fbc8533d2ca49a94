"""`talosctl health`: the cluster checks, each reported as `waiting for <check>: ...` then `: OK`."""

import base64
import http.client
import json
import pathlib
import ssl
import sys
import tempfile
import time
from urllib.parse import urlparse

import yaml

from .api import RpcError

POLL = 0.5


class CheckFailed(Exception):
    """A check that does not pass yet."""


def _split(values):
    return [part for value in values or () for part in value.split(',') if part]


class Health:
    """The checks over the control plane and worker nodes, through the client's endpoint."""

    def __init__(self, client, control_plane, workers):
        self.client = client
        self.control_plane = control_plane
        self.workers = workers
        self.kube_api = None  # (server URL, TLS context) of the admin kubeconfig

    @property
    def everyone(self):
        return self.control_plane + self.workers

    def etcd_healthy(self):
        for node in self.control_plane:
            members = self.client.call('EtcdMemberList', node)['members']
            if not any('https://{0}:2379'.format(node) in m['client_urls'] for m in members):
                raise CheckFailed('{0}: etcd is not running'.format(node))

    def etcd_consistent(self):
        seen = {node: sorted(m['id'] for m in self.client.call('EtcdMemberList', node)['members'])
                for node in self.control_plane}
        if len({json.dumps(ids) for ids in seen.values()}) > 1:
            raise CheckFailed('etcd member lists differ across nodes: {0}'.format(seen))

    def etcd_control_plane(self):
        members = self.client.call('EtcdMemberList', self.control_plane[0])['members']
        addresses = sorted(url.split('//')[1].rsplit(':', 1)[0] for m in members for url in m['client_urls'])
        if addresses != sorted(self.control_plane):
            raise CheckFailed('etcd members {0} are not the control plane nodes {1}'.format(
                addresses, sorted(self.control_plane)))

    def apid_ready(self):
        for node in self.everyone:
            self.client.call('Version', node)

    def boot_finished(self):
        for node in self.everyone:
            status = self.client.call('Get', node, type='machinestatus')['items'][0]['spec']
            if status['stage'] != 'running' or not status['status']['ready']:
                raise CheckFailed('node {0} is in stage {1}, not ready'.format(node, status['stage']))

    def _kube_nodes(self):
        if self.kube_api is None:
            config = yaml.safe_load(self.client.call('Kubeconfig', self.control_plane[0])['kubeconfig'])
            cluster, user = config['clusters'][0]['cluster'], config['users'][0]['user']
            context = ssl.create_default_context(cadata=base64.b64decode(cluster['certificate-authority-data']).decode())
            with tempfile.TemporaryDirectory() as scratch:
                files = {}
                for name, data in (('crt', user['client-certificate-data']), ('key', user['client-key-data'])):
                    files[name] = pathlib.Path(scratch) / name
                    files[name].write_bytes(base64.b64decode(data))
                context.load_cert_chain(str(files['crt']), str(files['key']))
            self.kube_api = (urlparse(cluster['server']), context)
        server, context = self.kube_api
        connection = http.client.HTTPSConnection(server.hostname, server.port or 443, timeout=10, context=context)
        try:
            connection.request('GET', '/api/v1/nodes')
            response = connection.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException) as exc:
            raise CheckFailed('Get "{0}/api/v1/nodes": {1}'.format(server.geturl(), exc)) from None
        finally:
            connection.close()
        if response.status != 200:
            raise CheckFailed('kubernetes API answered {0}'.format(response.status))
        return json.loads(body)['items']

    def _addresses(self, kube_node):
        return [a['address'] for a in (kube_node.get('status') or {}).get('addresses') or [] if a['type'] == 'InternalIP']

    def k8s_report(self):
        reported = sorted(a for n in self._kube_nodes() for a in self._addresses(n))
        if reported != sorted(self.everyone):
            raise CheckFailed('expected nodes {0}, got {1}'.format(sorted(self.everyone), reported))

    def k8s_ready(self):
        for kube_node in self._kube_nodes():
            conditions = {c['type']: c['status'] for c in (kube_node.get('status') or {}).get('conditions') or []}
            if conditions.get('Ready') != 'True':
                raise CheckFailed('node {0!r} is not ready'.format(kube_node['metadata']['name']))

    def k8s_schedulable(self):
        for kube_node in self._kube_nodes():
            if (kube_node.get('spec') or {}).get('unschedulable'):
                raise CheckFailed('node {0!r} is not schedulable'.format(kube_node['metadata']['name']))


CHECKS = (('etcd to be healthy', Health.etcd_healthy),
          ('etcd members to be consistent across nodes', Health.etcd_consistent),
          ('etcd members to be control plane nodes', Health.etcd_control_plane),
          ('apid to be ready', Health.apid_ready),
          ('all nodes to finish boot sequence', Health.boot_finished),
          ('all k8s nodes to report', Health.k8s_report),
          ('all k8s nodes to report ready', Health.k8s_ready),
          ('all k8s nodes to report schedulable', Health.k8s_schedulable))


def discover(client):
    """(control plane, workers) addresses from the cluster's members."""
    members = client.call('Get', None, type='members')['items']
    control_plane = [m['spec']['addresses'][0] for m in members if m['spec']['machineType'] == 'controlplane']
    workers = [m['spec']['addresses'][0] for m in members if m['spec']['machineType'] != 'controlplane']
    print('discovered nodes: [{0}]'.format(' '.join('"{0}"'.format(a) for a in control_plane + workers)))
    return control_plane, workers


def run_health(client, args):
    deadline = time.monotonic() + args.wait_timeout
    try:
        control_plane, workers = _split(args.control_plane_nodes), _split(args.worker_nodes)
        if args.init_node:
            control_plane = [args.init_node] + control_plane
        if not control_plane:
            control_plane, workers = discover(client)
        if not control_plane:
            print('healthcheck error: no control plane nodes', file=sys.stderr)
            return 1
    except RpcError as exc:
        print('healthcheck error: {0}'.format(exc), file=sys.stderr)
        return 1
    health = Health(client, control_plane, workers)
    for description, check in CHECKS:
        print('waiting for {0}: ...'.format(description))
        last = None
        while True:
            try:
                check(health)
                break
            except (CheckFailed, RpcError) as exc:
                if str(exc) != last:
                    print('waiting for {0}: {1}'.format(description, exc))
                    last = str(exc)
                if time.monotonic() >= deadline:
                    print('healthcheck error: {0}: context deadline exceeded'.format(description), file=sys.stderr)
                    return 1
                time.sleep(POLL)
        print('waiting for {0}: OK'.format(description))
    return 0
