"""What a Talos node and talosctl say to each other: JSON over HTTPS on port 50000, errors as gRPC codes.

A request is `POST /<Method>` with a JSON body naming the target `node` (the endpoint forwards to it,
as apid does); an error answers {"code": "<gRPC code name>", "message": ...}.
"""

CODES = ('Canceled', 'Unknown', 'InvalidArgument', 'DeadlineExceeded', 'NotFound', 'AlreadyExists',
         'PermissionDenied', 'ResourceExhausted', 'FailedPrecondition', 'Aborted', 'OutOfRange',
         'Unimplemented', 'Internal', 'Unavailable', 'DataLoss', 'Unauthenticated')
HTTP_STATUS = {'InvalidArgument': 400, 'NotFound': 404, 'AlreadyExists': 409, 'FailedPrecondition': 412,
               'PermissionDenied': 403, 'Unauthenticated': 401, 'Unimplemented': 501, 'Unavailable': 503}
# Methods the maintenance service answers without a client certificate.
MAINTENANCE_METHODS = ('Version', 'ApplyConfiguration', 'Get', 'Reset')
# Resource types `talosctl get` knows here: aliases -> (namespace, type).
RESOURCES = {
    'machineconfig': ('config', 'MachineConfigs.config.talos.dev'),
    'members': ('cluster', 'Members.cluster.talos.dev'),
    'machinestatus': ('runtime', 'MachineStatuses.runtime.talos.dev'),
    'hostname': ('network', 'HostnameStatuses.net.talos.dev'),
    'links': ('network', 'LinkStatuses.net.talos.dev'),
    'addresses': ('network', 'AddressStatuses.net.talos.dev'),
    'extensions': ('runtime', 'ExtensionStatuses.runtime.talos.dev'),
}
ALIASES = {'machineconfig': 'machineconfig', 'machineconfigs': 'machineconfig', 'mc': 'machineconfig',
           'members': 'members', 'member': 'members',
           'machinestatus': 'machinestatus', 'machinestatuses': 'machinestatus', 'ms': 'machinestatus',
           'hostname': 'hostname', 'hostnames': 'hostname', 'hostnamestatus': 'hostname',
           'hostnamestatuses': 'hostname', 'links': 'links', 'link': 'links', 'linkstatus': 'links',
           'linkstatuses': 'links', 'addresses': 'addresses', 'address': 'addresses', 'addressstatus': 'addresses',
           'addressstatuses': 'addresses', 'extensions': 'extensions', 'extension': 'extensions',
           'extensionstatus': 'extensions', 'extensionstatuses': 'extensions'}


class ConfigError(Exception):
    """A talosconfig that cannot be used."""


class RpcError(Exception):
    """A failed call, shown as talosctl shows a gRPC status. whole_call: the call failed before any target node
    answered (the endpoint unreachable, or refusing the client), so no node's name goes with the error."""

    def __init__(self, code, message, whole_call=False):
        super().__init__(message)
        self.code = code
        self.message = message
        self.whole_call = whole_call

    def __str__(self):
        return 'rpc error: code = {0} desc = {1}'.format(self.code, self.message)

    def body(self):
        found = {'code': self.code, 'message': self.message}
        if self.whole_call:
            found['whole_call'] = True
        return found

    @property
    def http_status(self):
        return HTTP_STATUS.get(self.code, 500)
