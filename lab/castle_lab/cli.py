"""castle-lab: bring the rehearsal lab up, check it, print its environment, inject faults, take it down."""

import argparse
import json
import os
import shlex
import sys
import time

from . import config, inventory, pki
from .process import LabError
from .services import OPT_IN, SERVICES
from .services.kube import KubeService
from .services.proxmox import ProxmoxService


class UsageError(Exception):
    """A command line the lab cannot act on."""


class OneLineParser(argparse.ArgumentParser):
    """argparse whose usage errors are one line on stderr, like every other castle-lab failure."""

    def error(self, message):
        self.exit(2, 'castle-lab: {0} (see {1} --help)\n'.format(message, self.prog))


def _services(cfg, names=None, opt_in=True):
    """The named services, else every service (without the opt-in ones unless `opt_in`)."""
    return {name: SERVICES[name](cfg) for name in (names or [n for n in SERVICES if opt_in or n not in OPT_IN])}


def _started(cfg):
    return {name: svc for name, svc in _services(cfg).items() if svc.started}


def cmd_up(cfg, names):
    began = time.monotonic()
    cfg.state.mkdir(parents=True, exist_ok=True)
    cfg.state.chmod(0o755)  # the OpenClaw node's user reaches its home below it
    pki.ensure_ca(cfg)
    wanted = _services(cfg, names, opt_in=False)
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


def cmd_env(cfg, names, as_json=False):
    services = _services(cfg, names) if names else _started(cfg)
    # The lab's tools, then this environment's scripts (castle-lab itself, talosctl).
    values = {'CASTLE_LAB_DIR': str(cfg.state),
              'PATH': '{0}:{1}:{2}'.format(cfg.tools / 'bin', os.path.dirname(sys.executable), os.environ.get('PATH', '')),
              'REQUESTS_CA_BUNDLE': str(cfg.ca_bundle), 'SSL_CERT_FILE': str(cfg.ca_bundle)}
    for svc in services.values():
        values.update(svc.env())
    if inventory.vault_password_file(cfg).exists():
        # Opens the inventory's ansible-vault encrypted values (castle_services).
        values['ANSIBLE_VAULT_PASSWORD_FILE'] = str(inventory.vault_password_file(cfg))
    if as_json:
        print(json.dumps({'dir': str(cfg.state), 'net': cfg.net, 'ca_cert': str(cfg.ca_cert),
                          'inventory': str(cfg.inventory), 'inventory_file': str(cfg.inventory / 'hosts.yml'),
                          'env': values, 'services': {name: svc.describe() for name, svc in services.items()}},
                         indent=2))
        return 0
    for key, value in values.items():
        print('export {0}={1}'.format(key, shlex.quote(value)))
    return 0


def _control(cfg, service):
    if service not in SERVICES:
        raise UsageError('unknown service {0!r} (known: {1})'.format(service, ', '.join(SERVICES)))
    if service != 'proxmox':
        raise UsageError('only proxmox has a control API, not {0!r}'.format(service))
    from .control import ProxmoxControl
    return ProxmoxControl(ProxmoxService.control_url_of(cfg))


def _fault_summary(rule):
    what = 'PVE error {0!r}'.format(rule['error']) if rule.get('error') else '{0} {1!r}'.format(
        rule['status'], rule['message'])
    times = '{0} time(s)'.format(rule['times']) if rule.get('times') else 'until cleared'
    return '{0} {1} fails with {2}, {3}'.format(rule['method'], rule['path'], what, times)


NETWORK_OPTIONS = ('latency', 'jitter', 'drop_rate', 'hang_rate', 'hang_secs', 'seed')


def _fault(control, args):
    """Apply one `castle-lab fault` action; returns what the fake now does, in one line."""
    action = args.action
    if action == 'fail':
        return _fault_summary(control.fail(args.method, args.path, status=args.status, message=args.message,
                                           error=args.error, times=args.times, html=args.html))
    if action == 'clear':
        return 'cleared {0} fault(s)'.format(control.clear_faults()['cleared'])
    if action == 'time-scale':
        return 'time scale {0}'.format(control.time_scale(args.value)['time_scale'])
    if action == 'hold-lock':
        held = control.hold_lock(args.vmid, args.secs)
        return 'VM {0} config lock held for {1:g} PVE seconds ({2:g}s)'.format(args.vmid, args.secs, held['real_secs'])
    if action == 'node':
        return 'node {0} {1}'.format(args.name, 'online' if control.node(args.name, args.online)['online'] else 'offline')
    if action == 'quorum':
        return 'quorum {0}'.format('back' if control.quorum(args.quorate)['quorate'] else 'lost')
    if action == 'network':
        given = {key: getattr(args, key) for key in NETWORK_OPTIONS if getattr(args, key) is not None}
        now = control.network(**given)
        return 'network ' + ' '.join('{0}={1}'.format(key, now[key]) for key in NETWORK_OPTIONS)
    return 'reset to the initial state: VM(s) {0}'.format(', '.join(str(vmid) for vmid in control.reset(args.wait)['vms']))


def cmd_fault(cfg, args):
    control = _control(cfg, args.service)
    print('{0}: {1}'.format(args.service, _fault(control, args)))
    return 0


def cmd_requests(cfg, args):
    control = _control(cfg, args.service)
    seen = control.requests()
    if args.list:
        for method, path in seen['requests']:
            print('{0} {1}'.format(method, path))
    else:
        print(seen['count'])
    if args.reset:
        control.reset_requests()
    return 0


def cmd_vault_requests(cfg, args):
    """The Vault requests of each ExternalSecret (and store) the Kubernetes emulator's ESO sent, per minute."""
    from .control import KubeControl
    control = KubeControl(KubeService(cfg).control_url)
    seen = control.vault_requests()
    rows = [('ExternalSecret', key, entry) for key, entry in seen['externalSecrets'].items()]
    rows += [('store', key, entry) for key, entry in seen['stores'].items()]
    print('{0:<15} {1:<50} {2:>8} {3:>9} {4:>10} {5:>11}'.format(
        'KIND', 'NAME', 'REQUESTS', 'SECONDS', 'PER MINUTE', 'LAST MINUTE'))
    for kind, key, entry in rows:
        print('{0:<15} {1:<50} {2:>8} {3:>9.1f} {4:>10.1f} {5:>11}'.format(
            kind, key, entry['requests'], entry['seconds'], entry['perMinute'], entry['lastMinute']))
    if args.reset:
        control.reset_vault_requests()
    return 0


def _parser():
    parser = OneLineParser(prog='castle-lab', description=__doc__)
    commands = parser.add_subparsers(dest='command', required=True, metavar='COMMAND')
    for name, purpose in (('up', 'start (or recover) services'), ('down', 'stop services'),
                          ('status', 'check services through real clients'),
                          ('env', 'print the export lines of the services\' variables')):
        sub = commands.add_parser(name, help=purpose)
        sub.add_argument('services', nargs='*', metavar='SERVICE', help='one of: ' + ', '.join(SERVICES))
        if name == 'env':
            sub.add_argument('--json', action='store_true', dest='as_json',
                             help='print the variables, the lab\'s paths and each service\'s address, ports and files '
                                  'as one JSON object')
    fault = commands.add_parser('fault', help='inject faults into a service (proxmox) through its control API')
    fault.add_argument('service', metavar='SERVICE')
    actions = fault.add_subparsers(dest='action', required=True, metavar='ACTION')
    fail = actions.add_parser('fail', help='fail requests by method and path suffix')
    fail.add_argument('--method', required=True)
    fail.add_argument('--path', required=True, help='path suffix, without /api2/json')
    fail.add_argument('--status', type=int)
    fail.add_argument('--message')
    fail.add_argument('--error', help="a PVE error's name (fakepve's errors_for)")
    fail.add_argument('--times', type=int, help='fail this many requests, then answer again (default: all)')
    fail.add_argument('--html', action='store_true', help="answer with a proxy's HTML page")
    actions.add_parser('clear', help='clear every injected failure')
    actions.add_parser('time-scale', help='real seconds per PVE second (0: tasks end at once)').add_argument(
        'value', type=float)
    hold = actions.add_parser('hold-lock', help="hold a VM's config lock")
    hold.add_argument('vmid', type=int)
    hold.add_argument('secs', type=float, help='PVE seconds (real seconds at time scale 0)')
    node = actions.add_parser('node', help='take a node offline or bring it back')
    node.add_argument('name')
    state = node.add_mutually_exclusive_group(required=True)
    state.add_argument('--offline', dest='online', action='store_false')
    state.add_argument('--online', dest='online', action='store_true')
    quorum = actions.add_parser('quorum', help='lose or regain quorum').add_mutually_exclusive_group(required=True)
    quorum.add_argument('--lost', dest='quorate', action='store_false')
    quorum.add_argument('--back', dest='quorate', action='store_true')
    network = actions.add_parser('network', help='slow or flaky network; only the options given change')
    for option in NETWORK_OPTIONS:
        network.add_argument('--' + option.replace('_', '-'), type=int if option == 'seed' else float)
    actions.add_parser('reset', help='back to the initial state').add_argument(
        '--wait', type=float, help='real seconds to wait for running tasks (default 30)')
    requests = commands.add_parser('requests', help='print how many requests a service (proxmox) has seen')
    requests.add_argument('service', metavar='SERVICE')
    requests.add_argument('--list', action='store_true', help='print each request as METHOD PATH instead')
    requests.add_argument('--reset', action='store_true', help='then forget them')
    vault_requests = commands.add_parser('vault-requests', help='print the Vault requests per minute of each '
                                         'ExternalSecret (and store) in the Kubernetes emulator')
    vault_requests.add_argument('--reset', action='store_true', help='then forget them')
    return parser


COMMANDS = {'up': cmd_up, 'down': cmd_down, 'status': cmd_status}


def main(argv=None):
    args = _parser().parse_args(argv)
    unknown = [name for name in getattr(args, 'services', ()) if name not in SERVICES]
    if unknown:
        print('castle-lab: unknown service {0} (known: {1})'.format(
            ', '.join(repr(n) for n in unknown), ', '.join(SERVICES)), file=sys.stderr)
        return 2
    try:
        cfg = config.load()
        if args.command == 'env':
            return cmd_env(cfg, args.services, args.as_json)
        if args.command in COMMANDS:
            return COMMANDS[args.command](cfg, args.services)
        return {'fault': cmd_fault, 'requests': cmd_requests, 'vault-requests': cmd_vault_requests}[args.command](
            cfg, args)
    except UsageError as exc:
        print('castle-lab: {0}'.format(exc), file=sys.stderr)
        return 2
    except (LabError, ValueError) as exc:
        print('castle-lab: {0}'.format(exc), file=sys.stderr)
        return 1


if __name__ == '__main__':
    sys.exit(main())
