"""Validation of Talos machine configs against the derived upstream schema, as a node does it.

Each YAML document is checked against its kind's definition (the v1alpha1 document has no kind),
then the semantic checks a node runs for the chosen mode. Errors name the field path and the reason.
"""

import functools
import importlib.resources
import ipaddress
import json
from urllib.parse import urlparse

import jsonschema
import yaml

V1ALPHA1 = 'v1alpha1.Config'
MODES = ('metal', 'cloud', 'container')


class ConfigInvalid(Exception):
    """A machine config a node refuses; `errors` lists one line per problem."""

    def __init__(self, errors):
        super().__init__(format_errors(errors))
        self.errors = list(errors)


def format_errors(errors):
    """Talos's multi-error text: `N error(s) occurred:` then one tab-indented `* ` line each."""
    head = '1 error occurred:' if len(errors) == 1 else '{0} errors occurred:'.format(len(errors))
    return '\n'.join([head] + ['\t* {0}'.format(error) for error in errors]) + '\n'


@functools.cache
def schema():
    text = importlib.resources.files('castle_lab').joinpath('talos', 'schema', 'config.schema.json').read_text()
    return json.loads(text)


@functools.cache
def _kinds():
    """kind -> $defs name of every multi-document kind."""
    kinds = {}
    for name, definition in schema()['$defs'].items():
        for kind in definition.get('properties', {}).get('kind', {}).get('enum', ()):
            kinds[kind] = name
    return kinds


@functools.cache
def _validator(definition):
    root = schema()
    return jsonschema.Draft202012Validator({'$schema': root['$schema'], '$defs': root['$defs'],
                                            '$ref': '#/$defs/' + definition})


def _path(error):
    parts = [str(part) for part in error.absolute_path]
    return '.'.join(parts) if parts else '(document)'


def _reason(error):
    if error.validator == 'additionalProperties':
        return 'unknown field ({0})'.format(error.message.split('(')[-1].rstrip(')'))
    return error.message


def parse_documents(text):
    """The YAML documents of a machine config (empty ones skipped); ConfigInvalid if not YAML mappings."""
    try:
        documents = [doc for doc in yaml.safe_load_all(text) if doc is not None]
    except yaml.YAMLError as exc:
        raise ConfigInvalid(['failed to parse config: {0}'.format(str(exc).replace('\n', ' '))]) from None
    if not documents:
        raise ConfigInvalid(['config is empty'])
    for doc in documents:
        if not isinstance(doc, dict):
            raise ConfigInvalid(['failed to decode config: document is not a mapping'])
    return documents


def schema_errors(document):
    """`path: reason` for each way the document breaks its kind's schema."""
    if 'kind' in document or 'apiVersion' in document:
        definition = _kinds().get(document.get('kind'))
        if definition is None:
            return ['kind: unknown config document kind {0!r} (apiVersion {1!r})'.format(
                document.get('kind'), document.get('apiVersion'))]
    else:
        definition = V1ALPHA1
    found = sorted(_validator(definition).iter_errors(document), key=lambda e: list(map(str, e.absolute_path)))
    return ['{0}: {1}'.format(_path(error), _reason(error)) for error in found]


def _ip(text):
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _address_errors(link, label):
    """`<label>: <reason>` for each of a device's or VLAN's addresses that is neither an IP nor a CIDR."""
    return ['{0}: {1}'.format(label, reason) for reason in map(_ip_or_cidr_error, link.get('addresses') or []) if reason]


def _ip_or_cidr_error(address):
    """Go's net.ParseCIDR / net.ParseIP verdict on an address, as validateIPOrCIDR words it, or None."""
    if '/' in address:
        try:
            ipaddress.ip_interface(address)
        except ValueError:
            return 'invalid CIDR address: {0}'.format(address)
        return None
    return None if _ip(address) else 'failed to parse IP address "{0}"'.format(address)


def _device_errors(device):
    """CheckDeviceInterface, CheckDeviceAddressing and CheckDeviceRoutes of one machine.network.interfaces item."""
    errors = []
    if device.get('ignore'):
        return errors
    name, selector = device.get('interface') or '', device.get('deviceSelector')
    pair = '[networking.os.device.interface], [networking.os.device.deviceSelector]: '
    if not name and selector is None:
        errors.append(pair + 'required either config section to be set')
    elif name and selector is not None:
        errors.append(pair + 'config sections are mutually exclusive')
    if selector is not None and not any(v not in (None, '') for v in (selector or {}).values()):
        errors.append('[networking.os.device.deviceSelector]: config section should contain at least one field')
    for vlan in device.get('vlans') or []:
        where = '{0}.{1}'.format(name, vlan.get('vlanId', 0))
        if vlan.get('addresses') and vlan.get('cidr'):
            errors.append('[networking.os.device.vlan] {0}: vlan can\'t have both .cidr and .addresses set'.format(where))
        errors += _address_errors(vlan, '[networking.os.device.vlan.addresses] {0}'.format(where))
    if device.get('addresses') and device.get('cidr'):
        errors.append('[networking.os.device] "{0}": interface can\'t have both .cidr and .addresses set'.format(name))
    errors += _address_errors(device, '[networking.os.device.addresses] "{0}"'.format(name))
    vip = device.get('vip')
    if vip is not None and not _ip((vip or {}).get('ip') or ''):
        errors.append('[networking.os.device.vip] failed to parse "{0}" as IP address'.format((vip or {}).get('ip') or ''))
    for index, route in enumerate(device.get('routes') or []):
        where = '[networking.os.device.route[{0}]'.format(index)
        network, gateway, source = route.get('network') or '', route.get('gateway') or '', route.get('source') or ''
        if network and ('/' not in network or _ip_or_cidr_error(network)):
            errors.append('{0}.network] "{1}": invalid network address'.format(where, network))
        if gateway and not _ip(gateway):
            errors.append('{0}.gateway] "{1}": invalid network address'.format(where, gateway))
        if not network and not gateway:
            errors.append('{0}]: either network or gateway should be set'.format(where))
        if source and not _ip(source):
            errors.append('{0}.source] "{1}": invalid network address'.format(where, source))
    return errors


def semantic_errors(config, mode):
    """The checks a node runs on a v1alpha1 document beyond the schema (Config.Validate of
    v1alpha1_validation.go, in its order and words, for the rules a rendered config can break)."""
    errors, warnings = [], []
    machine, cluster = config.get('machine') or {}, config.get('cluster') or {}
    machine_type = machine.get('type')
    control_plane = machine_type in ('controlplane', 'init')
    if config.get('version') != 'v1alpha1':
        errors.append('version: config version {0!r} is not supported'.format(config.get('version')))
    endpoint = ((cluster.get('controlPlane') or {}).get('endpoint'))
    parsed = urlparse(endpoint or '')
    if parsed.scheme != 'https' or not parsed.hostname:
        errors.append('cluster.controlPlane.endpoint: {0!r} is not a valid https URL'.format(endpoint))
    if cluster.get('etcd') is not None and not control_plane:
        errors.append('etcd config is only allowed on control plane machines')
    if (cluster.get('ca') or {}).get('key') and not control_plane:
        errors.append('cluster CA key is not allowed on non-controlplane nodes (.cluster.ca)')
    if mode == 'metal':
        install = machine.get('install')
        if install is None:
            errors.append('install instructions are required in "metal" mode')
        elif not (install.get('disk') or install.get('diskSelector')):
            errors.append('either install disk or diskSelector should be defined')
    os_ca = machine.get('ca')
    if os_ca is None and not machine.get('acceptedCAs'):
        errors.append('issuing CA or some accepted CAs are required (.machine.ca, machine.acceptedCAs)')
    if control_plane:
        if os_ca is None:
            errors.append('issuing CA is required (.machine.ca)')
        elif not os_ca.get('key'):
            errors.append('issuing CA key is required for controlplane nodes (.machine.ca.key)')
        if not (cluster.get('ca') or {}).get('key'):
            errors.append('cluster.ca: a control plane node needs the cluster CA key')
    elif machine_type == 'worker':
        for device in (machine.get('network') or {}).get('interfaces') or []:
            for vip in [device.get('vip')] + [vlan.get('vip') for vlan in device.get('vlans') or []]:
                if vip is not None:
                    errors.append('virtual (shared) IP is not allowed on non-controlplane nodes')
        if os_ca is not None:
            if os_ca.get('key'):
                errors.append('issuing Talos API CA key is not allowed on non-controlplane nodes (.machine.ca)')
            if not os_ca.get('crt') and not machine.get('acceptedCAs'):
                errors.append('trusted CA certificates are required on non-controlplane nodes '
                              '(.machine.ca.crt, .machine.acceptedCAs)')
        if (cluster.get('ca') or {}).get('key'):
            errors.append('issuing Kubernetes API CA key is not allowed on non-controlplane nodes (.cluster.ca)')
    else:
        errors.append('unknown machine type "{0}"'.format(machine_type or ''))
    for device in (machine.get('network') or {}).get('interfaces') or []:
        errors.extend(_device_errors(device or {}))
    if not machine.get('token'):
        errors.append('machine.token: machine token is required')
    if not cluster.get('clusterName'):
        warnings.append('cluster.clusterName: cluster name is empty')
    return errors, warnings


def validate(text, mode='metal', strict=False):
    """The parsed documents of a valid config and its warnings; ConfigInvalid otherwise.

    A config must hold exactly one v1alpha1 document (the other kinds may come with it)."""
    if mode not in MODES:
        raise ValueError('unknown mode {0!r}, valid values are metal, cloud, and container'.format(mode))
    documents = parse_documents(text)
    seen = set()
    for doc in documents:
        key = (doc.get('apiVersion') or '', doc.get('kind') or 'v1alpha1', doc.get('name') or '')
        if key in seen:
            raise ConfigInvalid(['duplicate document {0}/{1}/{2} is not allowed'.format(*key)])
        seen.add(key)
    errors, warnings = [], []
    for doc in documents:
        errors.extend(schema_errors(doc))
    main = [doc for doc in documents if 'kind' not in doc and 'apiVersion' not in doc]
    if len(main) != 1:
        errors.append('config must hold exactly one v1alpha1 document, not {0}'.format(len(main)))
    elif not errors:
        found, warned = semantic_errors(main[0], mode)
        errors.extend(found)
        warnings.extend(warned)
    if strict:
        errors.extend('warning: ' + warning for warning in warnings)
        warnings = []
    if errors:
        raise ConfigInvalid(errors)
    return documents, warnings


def machine_document(documents):
    """The v1alpha1 document among a config's documents."""
    return next(doc for doc in documents if 'kind' not in doc and 'apiVersion' not in doc)
