"""Where a lab lives and which addresses it uses, read from the environment."""

import os
import pathlib
from dataclasses import dataclass

REPO = pathlib.Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class LabConfig:
    """One lab: its state directory, tools, loopback network and inventory."""

    state: pathlib.Path
    tools: pathlib.Path
    net: str
    inventory: pathlib.Path
    openclaw_user: str
    # Whether the OpenClaw node also runs a gateway (CASTLE_LAB_OPENCLAW_GATEWAY=1 at `castle-lab up`).
    openclaw_gateway: bool = False

    def address(self, host):
        """The loopback address of host number `host` in this lab's /24."""
        return '{0}.{1}'.format(self.net, host)

    def dir(self, name, mode=0o755):
        """The state directory of one service, created on first use."""
        path = self.state / name
        path.mkdir(parents=True, exist_ok=True, mode=mode)
        return path

    @property
    def ca_cert(self):
        return self.state / 'ca' / 'ca.crt'

    @property
    def ca_bundle(self):
        """The system CA bundle plus the lab CA, for clients that only read REQUESTS_CA_BUNDLE."""
        return self.state / 'ca' / 'bundle.pem'


def load(environ=None):
    """The lab named by CASTLE_LAB_* variables; the repository's own .lab/ by default."""
    env = os.environ if environ is None else environ
    state = pathlib.Path(env.get('CASTLE_LAB_DIR') or REPO / '.lab').resolve()
    default_inventory = REPO / 'inventories' / 'lab' if state == (REPO / '.lab').resolve() else state / 'inventory'
    net = env.get('CASTLE_LAB_NET', '127.0.10')
    if not net.startswith('127.') or net.count('.') != 2:
        raise ValueError('CASTLE_LAB_NET must be the first three octets of a 127.0.0.0/8 network, not {0!r}'.format(net))
    return LabConfig(
        state=state,
        tools=pathlib.Path(env.get('CASTLE_LAB_TOOLS') or REPO / '.lab' / 'tools').resolve(),
        net=net,
        inventory=pathlib.Path(env.get('CASTLE_LAB_INVENTORY') or default_inventory).resolve(),
        openclaw_user=env.get('CASTLE_LAB_OPENCLAW_USER', 'castle-claw'),
        openclaw_gateway=env.get('CASTLE_LAB_OPENCLAW_GATEWAY', '') not in ('', '0', 'false', 'no'),
    )
