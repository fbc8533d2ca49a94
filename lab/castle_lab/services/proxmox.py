"""A Proxmox VE API from fakepve, served by castle_lab.proxmox.server with a real API token, and its
control API (castle_lab.proxmox.control) on the next port; VMs booting the Talos ISO are Talos nodes."""

import secrets
import sys

from .. import pki
from ..process import LabError
from .base import Service

TOKEN_USER = 'root@pam'
TOKEN_NAME = 'castle'


class ProxmoxService(Service):
    name = 'proxmox'
    host = 2
    port = 8006
    control_port = port + 1

    @classmethod
    def control_url_of(cls, cfg):
        """The control API's URL in a lab, without creating anything in its state directory."""
        return 'http://{0}:{1}'.format(cfg.address(cls.host), cls.control_port)

    @property
    def control_url(self):
        return self.control_url_of(self.cfg)

    @property
    def token_file(self):
        return self.dir / 'token'

    def prepare(self):
        self.cert, self.key = pki.issue_server_cert(self.cfg, self.dir, 'pve', [self.address])
        if not self.token_file.exists():
            pki.write_secret(self.token_file, secrets.token_hex(16))

    def command(self):
        return [sys.executable, '-m', 'castle_lab.proxmox.server', '--host', self.address, '--port', str(self.port),
                '--control-port', str(self.control_port), '--cert', str(self.cert), '--key', str(self.key),
                '--token-id', self.token_id, '--token-file', str(self.token_file),
                '--talos-state', str(self.cfg.dir('talos')), '--lab-net', self.cfg.net,
                '--storage-dir', str(self.dir / 'storage'), '--ca', str(self.cfg.ca_cert)]

    @property
    def token_id(self):
        return '{0}!{1}'.format(TOKEN_USER, TOKEN_NAME)

    def api(self):
        from proxmoxer import ProxmoxAPI
        return ProxmoxAPI(self.address, port=self.port, user=TOKEN_USER, token_name=TOKEN_NAME,
                          token_value=self.token_file.read_text().strip(), verify_ssl=str(self.cfg.ca_cert),
                          timeout=5)

    def check(self):
        import requests
        from proxmoxer import ResourceException

        from ..control import ProxmoxControl
        try:
            nodes = self.api().nodes.get()
        except (OSError, requests.RequestException, ResourceException) as exc:
            raise LabError(str(exc) or type(exc).__name__) from exc
        control = ProxmoxControl(self.control_url, timeout=5)
        vms, talos = control.vms(), control.talos_nodes()
        running = sum(1 for node in talos if node['stage'] != 'off')
        return 'nodes {0}, {1} VM(s), {2} Talos node(s) up, control API at {3}'.format(
            ', '.join(sorted(n['node'] for n in nodes)), len(vms), running, self.control_url)

    def files(self):
        # The Talos nodes run in this service's process; their DHCP leases are the lab's.
        return dict(super().files(), token=self.token_file, talos_leases=self.cfg.state / 'talos' / 'leases.json')

    def env(self):
        return {'PROXMOX_URL': 'https://{0}:{1}/api2/json'.format(self.address, self.port),
                'PROXMOX_HOST': self.address,
                'PROXMOX_TOKEN_ID': self.token_id,
                'PROXMOX_TOKEN_SECRET': self.token_file.read_text().strip(),
                'PROXMOX_CA': str(self.cfg.ca_cert),
                'CASTLE_LAB_PROXMOX_CONTROL': self.control_url}
