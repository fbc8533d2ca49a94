"""What every lab service offers: start, readiness, a health check through a real client, env."""

import socket

from .. import process
from ..process import LabError, ProcessGone


class Service:
    """One lab service. Subclasses set name, host (last octet of its address) and port."""

    name = ''
    host = 0
    port = 0
    control_port = 0  # a plain-HTTP control API on the loopback address, if the service has one
    ready_timeout = 30.0

    def __init__(self, cfg):
        self.cfg = cfg
        self.dir = cfg.dir(self.name)

    @property
    def address(self):
        return self.cfg.address(self.host)

    @property
    def started(self):
        """Whether `up` started this service (its PID file exists), alive or not."""
        return (self.dir / (self.name + '.pid')).exists()

    def running(self):
        return process.recorded(self.dir, self.name) is not None

    def prepare(self):
        """Write the files the service needs before it starts (idempotent)."""

    def command(self):
        """argv of the service's process."""
        raise NotImplementedError

    def launch_env(self):
        return None

    def start(self):
        self.prepare()
        self._ensure_port_free()
        process.spawn(self.dir, self.name, self.command(), env=self.launch_env(), cwd=self.dir)

    @property
    def ports(self):
        """Every port the service listens on, its main one first, then its control API's if it has one."""
        return (self.port, self.control_port) if self.control_port else (self.port,)

    @property
    def control_url(self):
        return 'http://{0}:{1}'.format(self.address, self.control_port)

    def _ensure_port_free(self):
        for port in self.ports:
            with socket.socket() as sock:
                if sock.connect_ex((self.address, port)) == 0:
                    raise LabError('{0}: {1}:{2} is already taken by a process the lab did not start'.format(
                        self.name, self.address, port))

    def ready(self):
        """Wait until the service answers; then finish its set-up (init, seed)."""
        process.wait_until(self._answers, self.ready_timeout, self.name)
        self.provision()

    def _answers(self):
        if not self.running():
            raise ProcessGone('{0}: process exited; see {1}'.format(self.name, self.dir / (self.name + '.log')))
        return self.answers()

    def answers(self):
        """True once the process serves requests; by default the full health check."""
        self.check()
        return True

    def provision(self):
        """Set-up that needs the running service."""

    def check(self):
        """Raise LabError unless the service works through a real client; return a short detail."""
        raise NotImplementedError

    def stop(self):
        return process.stop(self.dir, self.name)

    def env(self):
        """Variables a client needs to use this service."""
        return {}

    def files(self):
        """The service's files a client or a test reads: its PID file and log, and what the service adds."""
        return {'pid': self.dir / (self.name + '.pid'), 'log': self.dir / (self.name + '.log')}

    def describe(self):
        """What `castle-lab env --json` tells of the service: where it listens, its files, its variables."""
        return {'address': self.address, 'ports': list(self.ports), 'dir': str(self.dir),
                'files': {key: str(path) for key, path in self.files().items()}, 'env': self.env()}
