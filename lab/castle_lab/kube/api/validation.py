"""Field validation of built-in kinds with the messages of apimachinery's util/validation and of
pkg/apis/{core,apps,batch}/validation: names, label and annotation keys, config keys, Service ports,
and the fields that may not change. Each check returns causes: [(field, message, reason)]."""

import json
import re

DNS1123_LABEL = '[a-z0-9]([-a-z0-9]*[a-z0-9])?'
DNS1123_SUBDOMAIN = DNS1123_LABEL + r'(\.' + DNS1123_LABEL + ')*'
DNS1035_LABEL = '[a-z]([-a-z0-9]*[a-z0-9])?'
QUALIFIED_NAME_PART = '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]'
LABEL_VALUE = '(' + QUALIFIED_NAME_PART + ')?'
CONFIG_KEY = '[-._a-zA-Z0-9]+'
ALNUM_EDGES = 'and must start and end with an alphanumeric character'


def regex_message(what, regex, *examples):
    """A syntax error as util/validation's RegexError words it: what, examples, the regex."""
    return "{0} (e.g. {1}, regex used for validation is '{2}')".format(
        what, ',  or '.join("'{0}'".format(e) for e in examples), regex)


DNS1123_LABEL_MSG = regex_message("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or "
                                  "'-', " + ALNUM_EDGES, DNS1123_LABEL, 'my-name', '123-abc')
DNS1123_SUBDOMAIN_MSG = regex_message("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                                      "characters, '-' or '.', " + ALNUM_EDGES, DNS1123_SUBDOMAIN, 'example.com')
DNS1035_LABEL_MSG = regex_message("a DNS-1035 label must consist of lower case alphanumeric characters or '-', start "
                                  "with an alphabetic character, and end with an alphanumeric character",
                                  DNS1035_LABEL, 'my-name', 'abc-123')
QUALIFIED_NAME_MSG = regex_message("must consist of alphanumeric characters, '-', '_' or '.', " + ALNUM_EDGES,
                                   QUALIFIED_NAME_PART, 'MyName', 'my.name', '123-abc')
LABEL_VALUE_MSG = regex_message("a valid label must be an empty string or consist of alphanumeric characters, '-', "
                                "'_' or '.', " + ALNUM_EDGES, LABEL_VALUE, 'MyValue', 'my_value', '12345')
CONFIG_KEY_MSG = regex_message("a valid config key must consist of alphanumeric characters, '-', '_' or '.'",
                               CONFIG_KEY, 'key.name', 'KEY_NAME', 'key-name')
TOTAL_ANNOTATION_SIZE = 256 * 1024
PORT_RANGE_MSG = 'must be between 1 and 65535, inclusive'
PROTOCOLS = ('SCTP', 'TCP', 'UDP')
SERVICE_TYPES = ('ClusterIP', 'ExternalName', 'LoadBalancer', 'NodePort')
SESSION_AFFINITIES = ('ClientIP', 'None')
IMMUTABLE = 'field is immutable'
IMMUTABLE_WHEN_SET = 'field is immutable when `immutable` is set'
# StatefulSet spec fields an update may change (ValidateStatefulSetUpdate).
STATEFULSET_MUTABLE = ('replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy',
                       'minReadySeconds')


def _full(pattern, value):
    return re.fullmatch(pattern, value) is not None


def quoted(value):
    """A value as field.Error prints it: strings quoted, numbers and booleans bare."""
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, (int, float)):
        return str(value)
    if value is None:
        return 'null'
    return json.dumps(value, ensure_ascii=False) if isinstance(value, str) else str(value)


def invalid(field, value, detail):
    return (field, 'Invalid value: {0}: {1}'.format(quoted(value), detail), 'FieldValueInvalid')


def required(field, detail=''):
    return (field, 'Required value' + (': ' + detail if detail else ''), 'FieldValueRequired')


def unsupported(field, value, supported):
    return (field, 'Unsupported value: {0}: supported values: {1}'.format(
        quoted(value), ', '.join('"{0}"'.format(s) for s in supported)), 'FieldValueNotSupported')


def forbidden(field, detail):
    return (field, 'Forbidden: ' + detail, 'FieldValueForbidden')


def duplicate(field, value):
    return (field, 'Duplicate value: ' + quoted(value), 'FieldValueDuplicate')


def too_long(field, limit):
    return (field, 'Too long: must have at most {0} bytes'.format(limit), 'FieldValueTooLong')


def max_len(limit):
    return 'must be no more than {0} characters'.format(limit)


# names and keys (apimachinery/pkg/util/validation)

def dns1123_label(value):
    msgs = [max_len(63)] if len(value) > 63 else []
    return msgs + ([] if _full(DNS1123_LABEL, value) else [DNS1123_LABEL_MSG])


def dns1123_subdomain(value):
    msgs = [max_len(253)] if len(value) > 253 else []
    return msgs + ([] if _full(DNS1123_SUBDOMAIN, value) else [DNS1123_SUBDOMAIN_MSG])


def dns1035_label(value):
    msgs = [max_len(63)] if len(value) > 63 else []
    return msgs + ([] if _full(DNS1035_LABEL, value) else [DNS1035_LABEL_MSG])


def qualified_name(value):
    """IsQualifiedName: an optional DNS subdomain prefix and '/', then a name part."""
    parts = value.split('/')
    if len(parts) == 1:
        prefix, name = '', parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            return ['prefix part must be non-empty']
    else:
        return ['a qualified name ' + QUALIFIED_NAME_MSG + " with an optional DNS subdomain prefix and '/' "
                "(e.g. 'example.com/MyName')"]
    msgs = ['prefix part ' + m for m in dns1123_subdomain(prefix)] if prefix else []
    if not name:
        return msgs + ['name part must be non-empty']
    if len(name) > 63:
        msgs.append('name part ' + max_len(63))
    if not _full(QUALIFIED_NAME_PART, name):
        msgs.append('name part ' + QUALIFIED_NAME_MSG)
    return msgs


def label_value(value):
    msgs = [max_len(63)] if len(value) > 63 else []
    return msgs + ([] if _full(LABEL_VALUE, value) else [LABEL_VALUE_MSG])


def config_key(value):
    msgs = [max_len(253)] if len(value) > 253 else []
    if not _full(CONFIG_KEY, value):
        msgs.append(CONFIG_KEY_MSG)
    if value in ('.', '..'):
        msgs.append("must not be '{0}'".format(value))
    elif value.startswith('..'):
        msgs.append("must not start with '..'")
    return msgs


def port_name(value):
    """IsValidPortName (IANA_SVC_NAME)."""
    msgs = []
    if len(value) > 15:
        msgs.append(max_len(15))
    if not _full('[-a-z0-9]+', value):
        msgs.append('must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)')
    if not re.search('[a-z]', value):
        msgs.append('must contain at least one letter (a-z)')
    if '--' in value:
        msgs.append('must not contain consecutive hyphens')
    if value.startswith('-') or value.endswith('-'):
        msgs.append('must not begin or end with a hyphen')
    return msgs


def valid_port(value):
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 65535


# object metadata

NAME_RULES = {'Namespace': dns1123_label, 'Service': dns1035_label}


def object_name(kind, name):
    """metadata.name of a new object of `kind` (ValidateObjectMeta with the kind's name function)."""
    rule = NAME_RULES.get(kind, dns1123_subdomain)
    return [invalid('metadata.name', name, msg) for msg in rule(name)]


def object_meta(meta):
    causes = []
    for key, value in (meta.get('labels') or {}).items():
        causes += [invalid('metadata.labels', key, msg) for msg in qualified_name(key)]
        if isinstance(value, str):
            causes += [invalid('metadata.labels', value, msg) for msg in label_value(value)]
    annotations = meta.get('annotations') or {}
    for key in annotations:
        causes += [invalid('metadata.annotations', key, msg) for msg in qualified_name(key.lower())]
    if sum(len(k) + len(v or '') for k, v in annotations.items() if isinstance(v, str)) > TOTAL_ANNOTATION_SIZE:
        causes.append(too_long('metadata.annotations', TOTAL_ANNOTATION_SIZE))
    return causes


def go_map(values):
    """A map[string]string as Go's %#v prints it."""
    return 'map[string]string{{{0}}}'.format(', '.join('{0}:{1}'.format(json.dumps(k), json.dumps(v))
                                                       for k, v in sorted((values or {}).items())))


def selector_labels(field, labels):
    """Label keys and values in a selector's matchLabels (ValidateLabels on the selector path)."""
    causes = []
    for key, value in (labels or {}).items():
        causes += [invalid(field, key, msg) for msg in qualified_name(key)]
        if isinstance(value, str):
            causes += [invalid(field, value, msg) for msg in label_value(value)]
    return causes


# kinds

def config_data(obj):
    """ConfigMap and Secret keys; a key in both data and binaryData is a duplicate."""
    causes = []
    for field in ('data', 'binaryData'):
        for key in obj.get(field) or {}:
            causes += [invalid('{0}[{1}]'.format(field, key), key, msg) for msg in config_key(key)]
    for key in set(obj.get('data') or {}) & set(obj.get('binaryData') or {}):
        causes.append(invalid('data[{0}]'.format(key), key, 'duplicate of key present in binaryData'))
    return causes


def service(spec):
    causes = []
    kind = spec.get('type')
    if kind not in SERVICE_TYPES:
        causes.append(unsupported('spec.type', kind, SERVICE_TYPES))
    affinity = spec.get('sessionAffinity')
    if affinity not in SESSION_AFFINITIES:
        causes.append(unsupported('spec.sessionAffinity', affinity, SESSION_AFFINITIES))
    ports = spec.get('ports') or []
    if not ports and kind != 'ExternalName' and spec.get('clusterIP') != 'None':
        causes.append(required('spec.ports'))
    names = set()
    for index, port in enumerate(ports):
        where = 'spec.ports[{0}]'.format(index)
        name = port.get('name') or ''
        if len(ports) > 1 and not name:
            causes.append(required(where + '.name'))
        elif name:
            causes += [invalid(where + '.name', name, msg) for msg in dns1123_label(name)]
            if name in names:
                causes.append(duplicate(where + '.name', name))
            names.add(name)
        if not valid_port(port.get('port')):
            causes.append(invalid(where + '.port', port.get('port'), PORT_RANGE_MSG))
        if port.get('protocol') not in PROTOCOLS:
            causes.append(unsupported(where + '.protocol', port.get('protocol'), PROTOCOLS))
        # targetPort is an IntOrString, printed by its String(): bare.
        target = port.get('targetPort')
        if isinstance(target, str):
            causes += [(where + '.targetPort', 'Invalid value: {0}: {1}'.format(target, msg), 'FieldValueInvalid')
                       for msg in port_name(target)]
        elif target is not None and not valid_port(target):
            causes.append((where + '.targetPort', 'Invalid value: {0}: {1}'.format(target, PORT_RANGE_MSG),
                           'FieldValueInvalid'))
        if port.get('nodePort') not in (None, 0) and not valid_port(port['nodePort']):
            causes.append(invalid(where + '.nodePort', port['nodePort'], PORT_RANGE_MSG))
    return causes


def containers(path, pod_spec):
    """Container names and ports of a pod spec (the parts charts get wrong)."""
    causes = []
    seen = set()
    for group in ('initContainers', 'containers'):
        for index, container in enumerate(pod_spec.get(group) or []):
            where = '{0}.{1}[{2}]'.format(path, group, index)
            name = container.get('name') or ''
            if not name:
                causes.append(required(where + '.name'))
            else:
                causes += [invalid(where + '.name', name, msg) for msg in dns1123_label(name)]
                if name in seen:
                    causes.append(duplicate(where + '.name', name))
                seen.add(name)
            if not container.get('image') and group == 'containers':
                causes.append(required(where + '.image'))
            for number, port in enumerate(container.get('ports') or []):
                at = '{0}.ports[{1}]'.format(where, number)
                if not valid_port(port.get('containerPort')):
                    causes.append(invalid(at + '.containerPort', port.get('containerPort'), PORT_RANGE_MSG))
                if port.get('protocol') not in PROTOCOLS:
                    causes.append(unsupported(at + '.protocol', port.get('protocol'), PROTOCOLS))
                if port.get('name'):
                    causes += [invalid(at + '.name', port['name'], msg) for msg in port_name(port['name'])]
    return causes


# immutable fields (ValidateImmutableField and the kinds' update rules)

def label_selector_string(selector):
    """A LabelSelector as the server prints it in "field is immutable" (its generated String())."""
    if selector is None:
        return 'nil'
    labels = ''.join('{0}: {1},'.format(k, v) for k, v in sorted((selector.get('matchLabels') or {}).items()))
    expressions = ''.join('LabelSelectorRequirement{{Key:{0},Operator:{1},Values:[{2}],}},'.format(
        e.get('key', ''), e.get('operator', ''), ' '.join(e.get('values') or []))
        for e in selector.get('matchExpressions') or [])
    return '&LabelSelector{{MatchLabels:map[string]string{{{0}}},MatchExpressions:[]LabelSelectorRequirement{{{1}}},}}'\
        .format(labels, expressions)


def immutable_selector(new, old):
    selector, before = (new.get('spec') or {}).get('selector'), (old.get('spec') or {}).get('selector')
    if _normal_selector(selector) != _normal_selector(before):
        return [('spec.selector', 'Invalid value: {0}: {1}'.format(label_selector_string(selector), IMMUTABLE),
                 'FieldValueInvalid')]
    return []


def _normal_selector(selector):
    selector = selector or {}
    return (selector.get('matchLabels') or {}, selector.get('matchExpressions') or [])


def immutable_statefulset(new, old):
    spec, before = new.get('spec') or {}, old.get('spec') or {}
    rest = {k: v for k, v in spec.items() if k not in STATEFULSET_MUTABLE}
    rest_before = {k: v for k, v in before.items() if k not in STATEFULSET_MUTABLE}
    if rest != rest_before:
        return [forbidden('spec', "updates to statefulset spec for fields other than 'replicas', 'ordinals', "
                                  "'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and "
                                  "'minReadySeconds' are forbidden")]
    return []


def immutable_job(new, old):
    causes = immutable_selector(new, old)
    spec, before = new.get('spec') or {}, old.get('spec') or {}
    if spec.get('template') != before.get('template'):
        causes.append(('spec.template', 'Invalid value: core.PodTemplateSpec{...}: ' + IMMUTABLE, 'FieldValueInvalid'))
    for field in ('completionMode', 'podFailurePolicy', 'backoffLimitPerIndex'):
        if spec.get(field) != before.get(field):
            causes.append(invalid('spec.' + field, spec.get(field), IMMUTABLE))
    return causes


def immutable_data(new, old):
    """ConfigMap and Secret with immutable: true keep their data, binaryData and immutable."""
    if not old.get('immutable'):
        return []
    causes = []
    for field in ('data', 'binaryData'):
        if (new.get(field) or {}) != (old.get(field) or {}):
            causes.append(forbidden(field, IMMUTABLE_WHEN_SET))
    if not new.get('immutable'):
        causes.append(forbidden('immutable', IMMUTABLE_WHEN_SET))
    return causes


def immutable_service(new, old):
    spec, before = new.get('spec') or {}, old.get('spec') or {}
    causes = []
    if before.get('clusterIP') and before.get('type') != 'ExternalName' and spec.get('type') != 'ExternalName' \
            and spec.get('clusterIP') != before['clusterIP']:
        causes.append(('spec.clusterIPs[0]', 'Invalid value: []string{{{0}}}: may not change once set'.format(
            ', '.join(json.dumps(ip) for ip in spec.get('clusterIPs') or [spec.get('clusterIP')])),
            'FieldValueInvalid'))
        causes.append(invalid('spec.clusterIP', spec.get('clusterIP'), IMMUTABLE))
    return causes


def immutable_pvc(new, old):
    """A claim's spec, except resources.requests (bound claims) and volumeAttributesClassName."""
    spec = dict(new.get('spec') or {})
    before = dict(old.get('spec') or {})
    for side in (spec, before):
        side.pop('volumeAttributesClassName', None)
        side['resources'] = {k: v for k, v in (side.get('resources') or {}).items() if k != 'requests'}
    # Binding sets volumeName once; retroactive default class assignment sets an unset storageClassName.
    for field in ('volumeName', 'storageClassName'):
        if before.get(field) is None or (field == 'volumeName' and not before[field]):
            spec.pop(field, None)
            before.pop(field, None)
    if spec != before:
        return [forbidden('spec', 'spec is immutable after creation except resources.requests and '
                                  'volumeAttributesClassName for bound claims')]
    return []
