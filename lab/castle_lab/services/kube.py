"""The lab's Kubernetes API emulator (castle_lab.kube.server.main): HTTPS with a cluster CA of its own,
an admin kubeconfig with a client certificate, and a fault control API on the next port."""

import base64
import os
import shutil
import sys

import yaml

from .. import pki
from ..kube.api.auth import ensure_cluster_pki
from ..process import LabError
from .base import Service

CLUSTER = 'castle-lab'
ADMIN = 'castle-admin'


class KubeService(Service):
    name = 'kube'
    host = 5
    port = 6443
    control_port = port + 1

    @property
    def url(self):
        return 'https://{0}:{1}'.format(self.address, self.port)

    @property
    def kubeconfig(self):
        return self.dir / 'kubeconfig'

    def prepare(self):
        self.pki = ensure_cluster_pki(self.dir, self.address)
        # Replica data belongs to Longhorn volumes the server holds in memory: a new server starts without either.
        shutil.rmtree(self.storage, ignore_errors=True)

        def data(name):
            return base64.b64encode(self.pki[name].read_bytes()).decode()

        config = {'apiVersion': 'v1', 'kind': 'Config', 'current-context': CLUSTER, 'preferences': {},
                  'clusters': [{'name': CLUSTER, 'cluster': {'server': self.url,
                                                             'certificate-authority-data': data('ca')}}],
                  'users': [{'name': ADMIN, 'user': {'client-certificate-data': data('admin_cert'),
                                                     'client-key-data': data('admin_key')}}],
                  'contexts': [{'name': CLUSTER, 'context': {'cluster': CLUSTER, 'user': ADMIN,
                                                            'namespace': 'default'}}]}
        pki.write_secret(self.kubeconfig, yaml.safe_dump(config, sort_keys=False))

    @property
    def artifacts(self):
        """Where the emulated Flux source controller keeps its artifacts."""
        return self.dir / 'artifacts'

    @property
    def storage(self):
        """The nodes' Longhorn disks: replica data of the emulated Longhorn volumes."""
        return self.dir / 'longhorn'

    def kubectl(self):
        """The absolute path of kubectl (PATH, then the lab's tools), which builds Flux Kustomizations."""
        search = os.pathsep.join([os.environ.get('PATH', ''), str(self.cfg.tools / 'bin')])
        found = shutil.which('kubectl', path=search)
        if not found:
            raise LabError('kube: kubectl is neither on PATH nor in {0}; Flux Kustomizations need it '
                           '(make setup installs it)'.format(self.cfg.tools / 'bin'))
        return os.path.abspath(found)

    def command(self):
        return [sys.executable, '-m', 'castle_lab.kube.server.main', '--host', self.address, '--port', str(self.port),
                '--control-port', str(self.control_port), '--cert', str(self.pki['server_cert']),
                '--key', str(self.pki['server_key']), '--client-ca', str(self.pki['ca']),
                '--sa-key', str(self.pki['sa_key']), '--artifact-dir', str(self.artifacts),
                '--storage-dir', str(self.storage), '--kubectl', self.kubectl()]

    def check(self):
        from kubernetes import client, config
        from kubernetes.client.rest import ApiException
        import urllib3
        try:
            api = client.CoreV1Api(config.new_client_from_config(str(self.kubeconfig)))
            names = [ns.metadata.name for ns in api.list_namespace(_request_timeout=5).items]
        except (OSError, ApiException, urllib3.exceptions.HTTPError, config.ConfigException) as exc:
            raise LabError(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__) from exc
        return '{0} namespace(s) at {1}, control API at {2}'.format(len(names), self.url, self.control_url)

    def files(self):
        return dict(super().files(), ca=self.dir / 'ca.crt', kubeconfig=self.kubeconfig)

    def env(self):
        return {'KUBECONFIG': str(self.kubeconfig), 'CASTLE_LAB_KUBE_CONTROL': self.control_url}
