"""Validation of Talos machine configs against the derived upstream schema, as a node does it.

Each YAML document is checked against its kind's definition (the v1alpha1 document has no kind),
then the semantic checks a node runs for the chosen mode. Errors name the field path and the reason.
"""

import functools
import importlib.resources
import json
from urllib.parse import urlparse

import jsonschema
import yaml

V1ALPHA1 = 'v1alpha1.Config'
MODES = ('metal', 'cloud', 'container')
MACHINE_TYPES = ('controlplane', 'worker')


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


def semantic_errors(config, mode):
    """The checks a node runs on a v1alpha1 document beyond the schema (a subset of Talos's)."""
    errors, warnings = [], []
    machine, cluster = config.get('machine') or {}, config.get('cluster') or {}
    if config.get('version') != 'v1alpha1':
        errors.append('version: config version {0!r} is not supported'.format(config.get('version')))
    if machine.get('type') not in MACHINE_TYPES:
        errors.append('machine.type: machine type {0!r} is not valid'.format(machine.get('type')))
    endpoint = ((cluster.get('controlPlane') or {}).get('endpoint'))
    parsed = urlparse(endpoint or '')
    if parsed.scheme != 'https' or not parsed.hostname:
        errors.append('cluster.controlPlane.endpoint: {0!r} is not a valid https URL'.format(endpoint))
    install = machine.get('install') or {}
    if mode == 'metal' and not (install.get('disk') or install.get('diskSelector')):
        errors.append('machine.install: install disk or diskSelector should be defined')
    if not (machine.get('ca') or {}).get('crt'):
        errors.append('machine.ca: issuing CA is required')
    if not machine.get('token'):
        errors.append('machine.token: machine token is required')
    if machine.get('type') in ('controlplane', 'init') and not (cluster.get('ca') or {}).get('key'):
        errors.append('cluster.ca: a control plane node needs the cluster CA key')
    if not cluster.get('clusterName'):
        warnings.append('cluster.clusterName: cluster name is empty')
    return errors, warnings


def validate(text, mode='metal', strict=False):
    """The parsed documents of a valid config and its warnings; ConfigInvalid otherwise.

    A config must hold exactly one v1alpha1 document (the other kinds may come with it)."""
    if mode not in MODES:
        raise ValueError('unknown mode {0!r}, valid values are metal, cloud, and container'.format(mode))
    documents = parse_documents(text)
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
        errors.extend(warnings)
    if errors:
        raise ConfigInvalid(errors)
    return documents, warnings


def machine_document(documents):
    """The v1alpha1 document among a config's documents."""
    return next(doc for doc in documents if 'kind' not in doc and 'apiVersion' not in doc)
