"""castle-lab: bring the rehearsal lab up, check it, print its environment, take it down."""

import argparse
import os
import shlex
import sys
import time

from . import config, inventory, pki
from .process import LabError
from .services import SERVICES


def _services(cfg, names=None):
    return {name: SERVICES[name](cfg) for name in (names or SERVICES)}


def _started(cfg):
    return {name: svc for name, svc in _services(cfg).items() if svc.started}


def cmd_up(cfg, names):
    began = time.monotonic()
    cfg.state.mkdir(parents=True, exist_ok=True)
    cfg.state.chmod(0o755)  # the OpenClaw node's user reaches its home below it
    pki.ensure_ca(cfg)
    wanted = _services(cfg, names)
    launched = []
    for name, svc in wanted.items():
        if svc.running():
            try:
                svc.check()
                continue
            except LabError as exc:
                print('{0}: running but unhealthy ({1}); restarting'.format(name, exc))
                svc.stop()
        elif svc.started:
            print('{0}: not running since its last start; starting again'.format(name))
            svc.stop()
        svc.start()
        launched.append(name)
    for name, svc in wanted.items():
        t0 = time.monotonic()
        if name in launched:
            svc.ready()
        detail = svc.check()
        print('{0}: up, {1} ({2:.1f}s)'.format(name, detail, time.monotonic() - t0))
    path = inventory.write(cfg, _started(cfg))
    print('inventory: {0}'.format(path))
    print('lab up in {0:.1f}s'.format(time.monotonic() - began))
    return 0


def cmd_down(cfg, names):
    for name, svc in _services(cfg, names).items():
        pid = svc.stop()
        if pid:
            print('{0}: stopped (pid {1})'.format(name, pid))
    return 0


def cmd_status(cfg, names):
    services = _services(cfg, names) if names else _started(cfg)
    if not services:
        print('castle-lab: no service is up in {0}'.format(cfg.state), file=sys.stderr)
        return 1
    failed = []
    for name, svc in services.items():
        try:
            if not svc.running():
                raise LabError('not running')
            print('{0}: ok, {1}'.format(name, svc.check()))
        except LabError as exc:
            print('{0}: FAILED, {1}'.format(name, exc))
            failed.append(name)
    if failed:
        print('castle-lab: unhealthy: {0}'.format(', '.join(failed)), file=sys.stderr)
        return 1
    return 0


def cmd_env(cfg, names):
    values = {'CASTLE_LAB_DIR': str(cfg.state),
              'PATH': '{0}:{1}'.format(cfg.tools / 'bin', os.environ.get('PATH', '')),
              'REQUESTS_CA_BUNDLE': str(cfg.ca_bundle), 'SSL_CERT_FILE': str(cfg.ca_bundle)}
    for svc in (_services(cfg, names) if names else _started(cfg)).values():
        values.update(svc.env())
    for key, value in values.items():
        print('export {0}={1}'.format(key, shlex.quote(value)))
    return 0


COMMANDS = {'up': cmd_up, 'down': cmd_down, 'status': cmd_status, 'env': cmd_env}


def main(argv=None):
    parser = argparse.ArgumentParser(prog='castle-lab', description=__doc__)
    parser.add_argument('command', choices=sorted(COMMANDS))
    parser.add_argument('services', nargs='*', metavar='SERVICE', help='one of: ' + ', '.join(SERVICES))
    args = parser.parse_args(argv)
    unknown = [name for name in args.services if name not in SERVICES]
    if unknown:
        print('castle-lab: unknown service {0} (known: {1})'.format(
            ', '.join(repr(n) for n in unknown), ', '.join(SERVICES)), file=sys.stderr)
        return 2
    try:
        cfg = config.load()
        return COMMANDS[args.command](cfg, args.services)
    except (LabError, ValueError) as exc:
        print('castle-lab: {0}'.format(exc), file=sys.stderr)
        return 1


if __name__ == '__main__':
    sys.exit(main())
