"""Request bodies in Kubernetes' protobuf encoding, for the kinds kubectl's imperative commands send that way
(`kubectl create namespace|configmap|secret|serviceaccount|token|role|rolebinding|clusterrole|
clusterrolebinding`), DeleteOptions and the reviews of `kubectl auth`. Other kinds answer 415."""

import base64

MAGIC = b'k8s\x00'
OBJECT_META = {1: ('name', 'string'), 2: ('generateName', 'string'), 3: ('namespace', 'string'),
               6: ('resourceVersion', 'string'), 11: ('labels', 'map'), 12: ('annotations', 'map'),
               14: ('finalizers', 'strings')}
RESOURCE_ATTRIBUTES = {1: ('namespace', 'string'), 2: ('verb', 'string'), 3: ('group', 'string'),
                       4: ('version', 'string'), 5: ('resource', 'string'), 6: ('subresource', 'string'),
                       7: ('name', 'string')}
NON_RESOURCE = {1: ('path', 'string'), 2: ('verb', 'string')}
RULE = {1: ('verbs', 'strings'), 2: ('apiGroups', 'strings'), 3: ('resources', 'strings'),
        4: ('resourceNames', 'strings'), 5: ('nonResourceURLs', 'strings')}
BINDING = {1: ('metadata', OBJECT_META), 2: ('subjects', ('repeated', {1: ('kind', 'string'), 2: ('apiGroup', 'string'),
                                                                      3: ('name', 'string'),
                                                                      4: ('namespace', 'string')})),
           3: ('roleRef', {1: ('apiGroup', 'string'), 2: ('kind', 'string'), 3: ('name', 'string')})}
KINDS = {
    'Namespace': {1: ('metadata', OBJECT_META), 2: ('spec', {1: ('finalizers', 'strings')})},
    'ConfigMap': {1: ('metadata', OBJECT_META), 2: ('data', 'map'), 3: ('binaryData', 'bytesmap'),
                  4: ('immutable', 'bool')},
    'Secret': {1: ('metadata', OBJECT_META), 2: ('data', 'bytesmap'), 3: ('type', 'string'), 4: ('stringData', 'map'),
               5: ('immutable', 'bool')},
    'ServiceAccount': {1: ('metadata', OBJECT_META), 4: ('automountServiceAccountToken', 'bool')},
    'DeleteOptions': {1: ('gracePeriodSeconds', 'int'), 2: ('preconditions', {1: ('uid', 'string'),
                                                                             2: ('resourceVersion', 'string')}),
                      3: ('orphanDependents', 'bool'), 4: ('propagationPolicy', 'string'), 5: ('dryRun', 'strings')},
    'Role': {1: ('metadata', OBJECT_META), 2: ('rules', ('repeated', RULE))},
    'ClusterRole': {1: ('metadata', OBJECT_META), 2: ('rules', ('repeated', RULE))},
    'RoleBinding': BINDING,
    'ClusterRoleBinding': BINDING,
    'SelfSubjectReview': {1: ('metadata', OBJECT_META)},
    'SelfSubjectAccessReview': {1: ('metadata', OBJECT_META), 2: ('spec', {1: ('resourceAttributes', RESOURCE_ATTRIBUTES),
                                                                         2: ('nonResourceAttributes', NON_RESOURCE)})},
    'SubjectAccessReview': {1: ('metadata', OBJECT_META), 2: ('spec', {
        1: ('resourceAttributes', RESOURCE_ATTRIBUTES), 2: ('nonResourceAttributes', NON_RESOURCE),
        3: ('user', 'string'), 4: ('groups', 'strings'), 6: ('uid', 'string')})},
    'SelfSubjectRulesReview': {1: ('metadata', OBJECT_META), 2: ('spec', {1: ('namespace', 'string')})},
    'TokenRequest': {1: ('metadata', OBJECT_META),
                     2: ('spec', {1: ('audiences', 'strings'), 4: ('expirationSeconds', 'int')})},
}
UNKNOWN = {1: ('typeMeta', {1: ('apiVersion', 'string'), 2: ('kind', 'string')}), 2: ('raw', 'raw')}


class ProtobufError(ValueError):
    """A body this server cannot read as protobuf."""


def _varint(data, pos):
    value = shift = 0
    while True:
        if pos >= len(data):
            raise ProtobufError('truncated varint')
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def _fields(data):
    """(field number, wire type, value) of each field of one message."""
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 2:
            size, pos = _varint(data, pos)
            value, pos = data[pos:pos + size], pos + size
        elif wire in (1, 5):
            width = 8 if wire == 1 else 4
            value, pos = data[pos:pos + width], pos + width
        else:
            raise ProtobufError('unsupported wire type {0}'.format(wire))
        yield number, wire, value


def _message(data, schema):
    result = {}
    for number, _wire, value in _fields(data):
        if number not in schema:
            continue
        name, kind = schema[number]
        if isinstance(kind, dict):
            result[name] = _message(value, kind)
        elif isinstance(kind, tuple):
            result.setdefault(name, []).append(_message(value, kind[1]))
        elif kind in ('string', 'raw'):
            if kind == 'raw' or value:
                result[name] = value if kind == 'raw' else value.decode()
        elif kind == 'strings':
            result.setdefault(name, []).append(value.decode())
        elif kind == 'int':
            result[name] = value
        elif kind == 'bool':
            result[name] = bool(value)
        elif kind in ('map', 'bytesmap'):
            entry = {n: v for n, _w, v in _fields(value)}
            text = entry.get(2, b'')
            result.setdefault(name, {})[entry.get(1, b'').decode()] = (
                base64.b64encode(text).decode() if kind == 'bytesmap' else text.decode())
    return result


def decode(body, kind):
    """The object in a protobuf request body, as its JSON form would be; ProtobufError if unreadable."""
    if not body.startswith(MAGIC):
        raise ProtobufError('missing the k8s protobuf prefix')
    envelope = _message(body[len(MAGIC):], UNKNOWN)
    type_meta = envelope.get('typeMeta', {})
    schema = KINDS.get(type_meta.get('kind') or kind)
    if schema is None:
        raise ProtobufError('protobuf bodies of kind {0} are not supported'.format(type_meta.get('kind') or kind))
    obj = _message(envelope.get('raw', b''), schema)
    if type_meta.get('apiVersion'):
        obj['apiVersion'] = type_meta['apiVersion']
    if type_meta.get('kind'):
        obj['kind'] = type_meta['kind']
    return obj
