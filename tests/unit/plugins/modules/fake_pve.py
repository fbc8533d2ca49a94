"""A small in-memory Proxmox VE cluster behind proxmoxer's API object: the paths the Proxmox modules call, answered
with the shapes of the PVE API (cluster/resources entries, pending lists, UPIDs and task status), tasks ending at
once. Faults are queued per request; every request is recorded."""

import itertools
import re

import proxmoxer

from ansible_collections.ephemeral.castle.plugins.module_utils import proxmox

LOGIN = dict(api_host='pve.test', api_token_id='root@pam!castle', api_token_secret='s3cret')
STORAGES = {
    'pve1': [{'storage': 'local', 'shared': 0}, {'storage': 'local-lvm', 'shared': 0}],
    'pve2': [{'storage': 'local', 'shared': 0}, {'storage': 'local-lvm', 'shared': 0}],
}
VM_PATH = re.compile(r'^nodes/(?P<node>[^/]+)/qemu/(?P<vmid>\d+)(?P<rest>/.*)?$')
# Keys a running VM takes only at its next start (no CPU or memory hotplug by default).
COLD_KEYS = ('cores', 'sockets', 'memory', 'cpu')


class FakePve(object):

    def __init__(self):
        self.vms = {}
        self.content = {}
        self.agent = {}
        self.requests = []
        self.faults = {}
        # Task types (qmclone, qmstart, download...) that stay running; the others end at once.
        self.running = set()
        self.logins = []
        self._upids = itertools.count(1)

    # ------------------------------------------------------------ set up

    def add_vm(self, vmid, name, node='pve1', status='stopped', template=0, **config):
        config = dict({'name': name}, **config)
        self.vms[vmid] = {'node': node, 'status': status, 'template': template, 'config': config, 'pending': {}}
        return self.vms[vmid]

    def fail(self, method, path, exc, times=1):
        """The next `times` requests `method path` raise exc."""
        self.faults.setdefault((method, path), []).extend([exc] * times)

    def made(self, method, prefix=''):
        """The requests of a method (and path prefix), in order."""
        return [(path, params) for m, path, params in self.requests if m == method and path.startswith(prefix)]

    def writes(self):
        return [(m, path) for m, path, _params in self.requests if m != 'get']

    # ------------------------------------------------------------- proxmoxer

    def login(self, host, **options):
        self.logins.append(dict(options, host=host))
        if options.get('password') == 'wrong':
            raise Exception("Couldn't authenticate user: {0} to https://{1}:8006/api2/json/access/ticket".format(
                options['user'], host))
        return self

    def __call__(self, path):
        return _Resource(self, path)

    def request(self, method, path, params):
        self.requests.append((method, path, params))
        queued = self.faults.get((method, path))
        if queued:
            raise queued.pop(0)
        vm_path = VM_PATH.match(path)
        if vm_path:
            return self._vm_request(method, int(vm_path.group('vmid')), vm_path.group('node'),
                                    vm_path.group('rest') or '', params)
        handler = {
            ('get', 'cluster/resources'): self._resources,
            ('get', 'cluster/nextid'): lambda p: str(next(i for i in itertools.count(100) if i not in self.vms)),
        }.get((method, path))
        if handler:
            return handler(params)
        parts = path.split('/')
        if method == 'get' and parts[0] == 'nodes' and parts[2:] == ['storage']:
            return STORAGES[parts[1]]
        if parts[0] == 'nodes' and parts[2] == 'storage' and len(parts) >= 5:
            return self._storage_request(method, parts[1], parts[3], parts[4:], params)
        if method == 'post' and parts[0] == 'nodes' and parts[2:] == ['qemu']:
            return self._create(parts[1], params)
        if method == 'get' and parts[2:3] == ['tasks']:
            if parts[-1] == 'status':
                if parts[3].split(':')[5] in self.running:
                    return {'status': 'running'}
                return {'status': 'stopped', 'exitstatus': 'OK'}
            return [{'n': 1, 't': 'TASK OK'}]
        raise AssertionError('the fake PVE does not know {0} {1}'.format(method.upper(), path))

    # ---------------------------------------------------------------- answers

    def _task(self, node, what):
        return 'UPID:{0}:0000{1:04X}:00000000:00000000:{2}::root@pam:'.format(node, next(self._upids), what)

    def _resources(self, params):
        return [dict({'id': 'qemu/{0}'.format(vmid), 'type': 'qemu', 'vmid': vmid, 'name': vm['config'].get('name'),
                      'node': vm['node'], 'status': vm['status'], 'template': vm['template']},
                     **dict(({'tags': vm['config']['tags']} if 'tags' in vm['config'] else {}),
                            **({'lock': vm['lock']} if vm.get('lock') else {})))
                for vmid, vm in sorted(self.vms.items())]

    def _create(self, node, params):
        params = dict(params)
        vmid = int(params.pop('vmid'))
        if vmid in self.vms:
            raise proxmoxer.ResourceException(500, 'Internal Server Error',
                                              'unable to create VM {0} - config file already exists'.format(vmid))
        for key, value in list(params.items()):
            match = re.match(r'^([\w-]+):(\d+)(,.*)?$', str(value))
            if re.match(r'^(scsi|virtio|sata|ide)\d+$', key) and match:
                params[key] = '{0}:vm-{1}-disk-{2},size={3}G{4}'.format(
                    match.group(1), vmid, key[-1], match.group(2), match.group(3) or '')
        self.vms[vmid] = {'node': node, 'status': 'stopped', 'template': 0, 'config': params, 'pending': {}}
        return self._task(node, 'qmcreate')

    def _vm_request(self, method, vmid, node, rest, params):
        vm = self.vms.get(vmid)
        if vm is None or vm['node'] != node:
            raise proxmoxer.ResourceException(
                500, 'Internal Server Error',
                "Configuration file 'nodes/{0}/qemu-server/{1}.conf' does not exist".format(node, vmid))
        if (method, rest) == ('get', '/pending'):
            entries = [{'key': k, 'value': v} for k, v in sorted(vm['config'].items())]
            for entry in entries:
                if entry['key'] in vm['pending']:
                    entry['pending'] = vm['pending'][entry['key']]
            return entries
        if (method, rest) == ('get', '/config'):
            return dict(vm['config'], digest='0123abcd')
        if (method, rest) == ('get', '/status/current'):
            return dict({'status': vm['status'], 'vmid': vmid}, **({'lock': vm['lock']} if vm.get('lock') else {}))
        if (method, rest) == ('put', '/config'):
            return self._write_config(vm, params)
        if (method, rest) == ('put', '/resize'):
            volume = vm['config'][params['disk']]
            vm['config'][params['disk']] = re.sub(r'size=[^,]+', 'size=' + params['size'], volume)
            return None
        if method == 'post' and rest.startswith('/status/'):
            action = rest.rsplit('/', 1)[1]
            vm['status'] = 'running' if action == 'start' else 'stopped'
            if action == 'start':
                vm['config'].update(vm['pending'])
                vm['pending'] = {}
            return self._task(node, 'qm' + action)
        if (method, rest) == ('post', '/clone'):
            newid = int(params['newid'])
            config = dict((k, v.replace('base-{0}'.format(vmid), 'vm-{0}'.format(newid)) if isinstance(v, str) else v)
                          for k, v in vm['config'].items())
            config['name'] = params['name']
            self.vms[newid] = {'node': params.get('target', node), 'status': 'stopped', 'template': 0,
                               'config': config, 'pending': {}}
            return self._task(node, 'qmclone')
        if (method, rest) == ('post', '/migrate'):
            vm['node'] = params['target']
            return self._task(node, 'qmigrate')
        if (method, rest) == ('delete', ''):
            del self.vms[vmid]
            return self._task(node, 'qmdestroy')
        if (method, rest) == ('get', '/agent/network-get-interfaces'):
            if vmid not in self.agent:
                raise proxmoxer.ResourceException(500, 'Internal Server Error', 'QEMU guest agent is not running')
            return {'result': self.agent[vmid]}
        raise AssertionError('the fake PVE does not know {0} nodes/{1}/qemu/{2}{3}'.format(
            method.upper(), node, vmid, rest))

    @staticmethod
    def _write_config(vm, params):
        params = dict(params)
        for key in [k for k in params.pop('delete', '').split(',') if k]:
            vm['config'].pop(key, None)
        for key, value in params.items():
            if vm['status'] == 'running' and key in COLD_KEYS:
                vm['pending'][key] = value
            else:
                vm['config'][key] = value
        return None

    def _storage_request(self, method, node, storage, rest, params):
        listed = self.content.setdefault((node, storage), [])
        if method == 'get' and rest == ['content']:
            return [e for e in listed if e['content'] == params.get('content', e['content'])]
        if method == 'post' and rest == ['download-url']:
            volid = '{0}:{1}/{2}'.format(storage, params['content'], params['filename'])
            listed.append({'volid': volid, 'content': params['content'], 'size': 104857600, 'format': 'iso'})
            return self._task(node, 'download')
        if method == 'delete' and rest[0] == 'content':
            self.content[(node, storage)] = [e for e in listed if e['volid'] != '/'.join(rest[1:])]
            return self._task(node, 'imgdel')
        raise AssertionError('the fake PVE does not know {0} storage {1}'.format(method.upper(), rest))


class _Resource(object):
    def __init__(self, pve, path):
        self.pve, self.path = pve, path

    def get(self, **params):
        return self.pve.request('get', self.path, params)

    def post(self, **params):
        return self.pve.request('post', self.path, params)

    def put(self, **params):
        return self.pve.request('put', self.path, params)

    def delete(self, **params):
        return self.pve.request('delete', self.path, params)


def install(monkeypatch):
    """A fake cluster every ProxmoxClient of the test logs in to; retries back off without sleeping."""
    fake = FakePve()
    monkeypatch.setattr(proxmoxer, 'ProxmoxAPI', fake.login)
    monkeypatch.setattr(proxmox, 'backoff', lambda attempt: 0)
    return fake
