"""Status bodies of failed requests, as kube-apiserver writes them."""


class ApiError(Exception):
    """A request the API refuses: code, reason, message and optional details."""

    def __init__(self, code, reason, message, details=None):
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details

    def status(self):
        body = {'kind': 'Status', 'apiVersion': 'v1', 'metadata': {}, 'status': 'Failure', 'message': self.message,
                'reason': self.reason, 'code': self.code}
        if not self.reason:
            del body['reason']  # StatusReasonUnknown, as for errors the server does not classify
        if self.details is not None:
            body['details'] = self.details
        return body


def _details(rtype, name, kind=None):
    details = {'name': name, 'kind': kind or rtype.plural}
    if rtype.group:
        details['group'] = rtype.group
    return details


def not_found(rtype, name):
    return ApiError(404, 'NotFound', '{0} "{1}" not found'.format(_resource(rtype), name), _details(rtype, name))


def already_exists(rtype, name):
    return ApiError(409, 'AlreadyExists', '{0} "{1}" already exists'.format(_resource(rtype), name),
                    _details(rtype, name))


def conflict(rtype, name, why='the object has been modified; please apply your changes to the latest version '
                              'and try again'):
    return ApiError(409, 'Conflict', 'Operation cannot be fulfilled on {0} "{1}": {2}'.format(
        _resource(rtype), name, why), _details(rtype, name))


def invalid(rtype, name, causes):
    """causes: [(field, message, cause reason)]."""
    details = _details(rtype, name, rtype.kind)
    details['causes'] = [{'reason': reason, 'message': message, 'field': field} for field, message, reason in causes]
    text = '; '.join('{0}: {1}'.format(f, m) if f else m for f, m, _r in causes)
    if len(causes) > 1:
        text = '[' + ', '.join('{0}: {1}'.format(f, m) for f, m, _r in causes) + ']'
    return ApiError(422, 'Invalid', '{0}.{1} "{2}" is invalid: {3}'.format(
        rtype.kind, rtype.group, name, text) if rtype.group else '{0} "{1}" is invalid: {2}'.format(
            rtype.kind, name, text), details)


def bad_request(message):
    return ApiError(400, 'BadRequest', message)


def _resource(rtype):
    return '{0}.{1}'.format(rtype.plural, rtype.group) if rtype.group else rtype.plural
