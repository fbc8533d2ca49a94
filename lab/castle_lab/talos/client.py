"""talosctl's side of the node API: talosconfig contexts, TLS credentials, calls and their errors.

Calls go over the standard library's HTTPS client, one kept-alive connection per endpoint, as talosctl
keeps one gRPC connection: a command that asks many nodes (health) makes one handshake, not one per call.
"""

import base64
import http.client
import json
import os
import pathlib
import socket
import ssl
import tempfile

import yaml

from . import API_PORT
from .api import ConfigError, RpcError

TIMEOUT = 30
CONNECT_TIMEOUT = 20  # gRPC's minimum connect timeout


def talosconfig_path(explicit=None):
    if explicit:
        return pathlib.Path(explicit)
    if os.environ.get('TALOSCONFIG'):
        return pathlib.Path(os.environ['TALOSCONFIG'])
    home = pathlib.Path.home() / '.talos' / 'config'
    system = pathlib.Path('/var/run/secrets/talos.dev/config')
    return home if home.exists() or not system.exists() else system


def load_context(path, name=None):
    """(context name, context dict) of a talosconfig."""
    try:
        config = yaml.safe_load(path.read_text()) or {}
    except OSError as exc:
        raise ConfigError('failed to open config file {0!r}: {1}'.format(str(path), exc.strerror)) from None
    except yaml.YAMLError as exc:
        raise ConfigError('failed to parse config file {0!r}: {1}'.format(str(path), exc)) from None
    name = name or config.get('context')
    contexts = config.get('contexts') or {}
    if not name:
        raise ConfigError('failed to determine config context: no context set')
    if name not in contexts:
        raise ConfigError('context "{0}" is not defined'.format(name))
    return name, contexts[name]


def _split(values):
    return [part for value in values or () for part in str(value).split(',') if part]


class Client:
    """Calls to nodes through an endpoint (mutual TLS with the context's credentials) or, insecure, directly."""

    def __init__(self, args, insecure=False):
        self.insecure = insecure
        self.nodes = _split(args.nodes)
        self.endpoints = _split(args.endpoints)
        self.scratch = tempfile.TemporaryDirectory(prefix='talosctl-')
        self.connections = {}  # host -> HTTPSConnection
        self.refused = {}  # endpoint -> the RpcError of its failed TLS handshake
        if insecure:
            self.endpoints = self.nodes or self.endpoints
            # The maintenance API serves a self-signed certificate: nothing to verify it against.
            self.tls = ssl.create_default_context()
            self.tls.check_hostname = False
            self.tls.verify_mode = ssl.CERT_NONE
            if not self.endpoints:
                raise ConfigError('no nodes specified, use --nodes')
            return
        _name, context = load_context(talosconfig_path(args.talosconfig), args.context)
        self.endpoints = self.endpoints or _split(context.get('endpoints'))
        self.nodes = self.nodes or _split(context.get('nodes'))
        if not self.endpoints:
            raise ConfigError('failed to determine endpoints')
        directory = pathlib.Path(self.scratch.name)
        for name in ('ca', 'crt', 'key'):
            if not context.get(name):
                raise ConfigError('context has no {0}'.format(name))
            (directory / name).write_bytes(base64.b64decode(context[name]))
        self.tls = ssl.create_default_context(cafile=str(directory / 'ca'))
        self.tls.load_cert_chain(str(directory / 'crt'), str(directory / 'key'))

    def targets(self):
        """The nodes a command acts on: --nodes, else the endpoint itself (None)."""
        return self.nodes or [None]

    def call(self, method, node=None, **body):
        """The answer of `method` on `node`; RpcError as talosctl would report it."""
        endpoints = [node] if self.insecure and node else self.endpoints
        last = None
        for endpoint in endpoints:
            # An endpoint whose TLS handshake failed stays failed for the rest of the command, as a gRPC
            # connection does: the calls for the other nodes do not try it again.
            if endpoint in self.refused:
                last = self.refused[endpoint]
                continue
            try:
                return self._post(endpoint, method, dict(body, node=node or endpoint))
            except RpcError as exc:
                if exc.code != 'Unavailable' or not exc.message.startswith('connection error'):
                    raise
                if 'handshake failed' in exc.message or 'i/o timeout' in exc.message:
                    self.refused[endpoint] = exc
                last = exc
        raise last

    def _post(self, endpoint, method, body):
        host = endpoint if ':' not in endpoint else endpoint.rsplit(':', 1)[0]
        payload = json.dumps(body).encode()
        headers = {'Content-Type': 'application/json'}
        while True:
            reused = host in self.connections
            connection = self.connections.get(host) or http.client.HTTPSConnection(
                host, API_PORT, timeout=TIMEOUT, context=self.tls)
            self.connections[host] = connection
            try:
                if connection.sock is None:
                    self._dial(host, connection)
                connection.request('POST', '/' + method, body=payload, headers=headers)
                response = connection.getresponse()
                data = response.read()
                break
            except ssl.SSLError as exc:
                self._drop(host)
                raise RpcError('Unavailable', 'connection error: desc = "transport: authentication handshake failed: '
                               '{0}"'.format(_tls_reason(exc)), whole_call=True) from None
            except socket.timeout:
                self._drop(host)
                raise RpcError('DeadlineExceeded', 'context deadline exceeded', whole_call=True) from None
            except (OSError, http.client.HTTPException) as exc:
                self._drop(host)
                # A kept-alive connection the node closed meanwhile (it rebooted, or let it idle): dial again.
                if reused and isinstance(exc, (ConnectionError, http.client.RemoteDisconnected)):
                    continue
                raise RpcError('Unavailable', 'connection error: desc = "transport: Error while dialing: dial tcp '
                               '{0}:{1}: connect: connection refused"'.format(host, API_PORT),
                               whole_call=True) from None
        try:
            answer = json.loads(data)
        except ValueError:
            raise RpcError('Unknown', 'unexpected answer {0} from {1}'.format(response.status, host)) from None
        if response.status != 200:
            raise RpcError(answer.get('code', 'Unknown'), answer.get('message', ''), bool(answer.get('whole_call')))
        return answer

    def _dial(self, host, connection):
        """Connect and shake hands; one that does not finish in time is a failed dial, so the call goes on to the
        next endpoint as gRPC's balancer does (a node that went down mid-handshake leaves it hanging)."""
        connection.timeout = CONNECT_TIMEOUT
        try:
            connection.connect()
            connection.sock.settimeout(TIMEOUT)
        except socket.timeout:
            self._drop(host)
            raise RpcError('Unavailable', 'connection error: desc = "transport: Error while dialing: dial tcp '
                           '{0}:{1}: i/o timeout"'.format(host, API_PORT), whole_call=True) from None

    def _drop(self, host):
        connection = self.connections.pop(host, None)
        if connection is not None:
            connection.close()

    def close(self):
        for host in list(self.connections):
            self._drop(host)
        self.scratch.cleanup()


def _tls_reason(exc):
    text = str(exc)
    if 'CERTIFICATE_VERIFY_FAILED' in text:
        return 'tls: failed to verify certificate: x509: certificate signed by unknown authority'
    if 'certificate required' in text.lower() or 'CERTIFICATE_REQUIRED' in text:
        return 'remote error: tls: certificate required'
    return 'tls: {0}'.format(text.split(':')[-1].strip(' )\'"') or 'handshake failure')
