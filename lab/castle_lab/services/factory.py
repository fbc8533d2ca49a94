"""A Talos Image Factory (castle_lab.talos.factory) over HTTPS on the lab's .6 address: schematics, ISOs and installer
images by schematic, as factory.talos.dev serves them."""

import ssl
import sys
import urllib.request

from .. import pki
from ..process import LabError
from ..talos import factory
from .base import Service


class FactoryService(Service):
    name = 'factory'
    host = 6
    port = 8443

    @classmethod
    def url_of(cls, cfg):
        """The factory's base URL in a lab, without creating anything in its state directory."""
        return 'https://{0}:{1}'.format(cfg.address(cls.host), cls.port)

    @property
    def url(self):
        return self.url_of(self.cfg)

    def prepare(self):
        self.cert, self.key = pki.issue_server_cert(self.cfg, self.dir, 'factory', [self.address])
        # The schematic of the ISO the lab's Proxmox VE holds, as if it had been posted once.
        factory.Store(self.dir / 'schematics').put(factory.default_schematic())

    def command(self):
        return [sys.executable, '-m', 'castle_lab.talos.factory', '--host', self.address, '--port', str(self.port),
                '--cert', str(self.cert), '--key', str(self.key), '--state', str(self.dir)]

    def check(self):
        context = ssl.create_default_context(cafile=str(self.cfg.ca_cert))
        sid = factory.schematic_id(factory.marshal(factory.default_schematic()))
        try:
            with urllib.request.urlopen('{0}/schematics/{1}'.format(self.url, sid), context=context,
                                        timeout=5) as response:
                response.read()
        except OSError as exc:
            raise LabError('factory: {0}'.format(exc)) from exc
        return '{0}, default schematic {1}'.format(self.url, sid[:12])

    def env(self):
        return {'CASTLE_LAB_FACTORY_URL': self.url}


__all__ = ['FactoryService']
