"""The HTTPS front of the API: authentication, discovery, OpenAPI, resource endpoints and watch streams."""

import asyncio
import base64
import datetime
import hashlib
import json
import logging
import types

import yaml
from aiohttp import web

from ..api import auth, builtin, errors, eviction, patch as patches, protobuf, selectors
from ..api.errors import ApiError
from ..api.rbac import Authorizer
from ..api.store import Expired
from .discovery import VERSION, group_entry, openapi_document, resource_list
from .tables import json_path, table

log = logging.getLogger(__name__)

# Field selectors beyond metadata.name/namespace: those of pods, secrets and events (`kubectl describe`).
EXTRA_FIELDS = ('status.phase', 'spec.nodeName', 'spec.serviceAccountName', 'status.podIP', 'type', 'reason',
                'source', 'involvedObject.kind', 'involvedObject.namespace', 'involvedObject.name',
                'involvedObject.uid', 'involvedObject.apiVersion', 'involvedObject.resourceVersion',
                'involvedObject.fieldPath')
REVIEWS = {'SelfSubjectReview': 'self_subject', 'SelfSubjectAccessReview': 'access', 'SubjectAccessReview': 'access',
           'SelfSubjectRulesReview': 'rules'}
PUBLIC_PATHS = ('/healthz', '/livez', '/readyz', '/version')
ANONYMOUS = ('system:anonymous', ['system:unauthenticated'])
WATCH_TIMEOUT = 1800
BOOKMARK_SECONDS = 5.0
# DeleteOptions: what its fields decode from (a JSON type) and into (the Go type the API server names).
DELETE_OPTIONS = types.SimpleNamespace(kind='DeleteOptions', group='meta.k8s.io', plural='deleteoptions')
DELETE_OPTION_TYPES = {'propagationPolicy': (str, 'v1.DeletionPropagation'), 'orphanDependents': (bool, 'bool'),
                       'gracePeriodSeconds': (int, 'int64'), 'preconditions': (dict, 'v1.Preconditions'),
                       'dryRun': (list, '[]string')}


def json_response(body, status=200):
    return web.Response(text=json.dumps(body), status=status, content_type='application/json')


def warning_header(text):
    """A Warning header value as the API server writes one: code 299, no agent, the text quoted."""
    return '299 - "{0}"'.format(text.replace('\\', '\\\\').replace('"', '\\"'))


def parse_path(path):
    """(group, version, namespace, plural, name, subresource) of a resource path, or None."""
    parts = [p for p in path.split('/') if p]
    if len(parts) >= 3 and parts[0] == 'api':
        group, version, rest = '', parts[1], parts[2:]
    elif len(parts) >= 4 and parts[0] == 'apis':
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    namespace = None
    if len(rest) >= 3 and rest[0] == 'namespaces' and rest[2] not in ('status', 'finalize'):
        namespace, rest = rest[1], rest[2:]
    if len(rest) > 3:
        return None
    rest = rest + [None] * (3 - len(rest))
    return (group, version, namespace, *rest)


def _json_type(value):
    return {bool: 'bool', int: 'number', float: 'number', str: 'string', list: 'array', dict: 'object'}.get(
        type(value), 'null')


def flag(query, key):
    return query.get(key, '').lower() in ('true', '1')


class KubeServer:
    """aiohttp application over one KubeApi."""

    def __init__(self, api, address, port, faults=None):
        self.api, self.address, self.port = api, address, port
        self.faults = faults
        self.authorizer = Authorizer(api)

    def app(self):
        middlewares = [self._errors]
        if self.faults is not None:
            middlewares.append(self.faults.middleware)
        middlewares.append(self._authenticate)
        app = web.Application(middlewares=middlewares, client_max_size=16 * 1024 ** 2)
        for path in PUBLIC_PATHS[:3]:
            app.router.add_get(path, self.healthz)
            app.router.add_get(path + '/{check:.*}', self.healthz)
        app.router.add_get('/version', self.version)
        app.router.add_get('/version/', self.version)
        app.router.add_get('/api', self.core_versions)
        app.router.add_get('/api/', self.core_versions)
        app.router.add_get('/apis', self.groups)
        app.router.add_get('/apis/', self.groups)
        app.router.add_get('/openapi/v3', self.openapi_root)
        app.router.add_get('/openapi/v3/{gv:.*}', self.openapi_group_version)
        app.router.add_route('*', '/{tail:.*}', self.resource)
        return app

    # middlewares

    @web.middleware
    async def _errors(self, request, handler):
        try:
            response = await handler(request)
        except ApiError as exc:
            response = json_response(exc.status(), exc.code)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            reason = {404: 'NotFound', 405: 'MethodNotAllowed'}.get(exc.status, 'BadRequest')
            message = 'the server could not find the requested resource' if exc.status == 404 else exc.reason
            return json_response(ApiError(exc.status, reason, message, {}).status(), exc.status)
        # What the request was warned about (fieldValidation=Warn, admission), on success and failure alike.
        for text in request.get('warnings') or ():
            response.headers.add('Warning', warning_header(text))
        return response

    @web.middleware
    async def _authenticate(self, request, handler):
        user = self._user(request)
        if user is None:
            if request.path.rstrip('/') in PUBLIC_PATHS or request.path.startswith(PUBLIC_PATHS[:3]):
                request['user'] = ANONYMOUS
                return await handler(request)
            raise ApiError(401, 'Unauthorized', 'Unauthorized')
        request['user'] = self._impersonated(request, user)
        return await handler(request)

    def _impersonated(self, request, user):
        """The user named by Impersonate-User/-Group headers, if the requester may impersonate."""
        name = request.headers.get('Impersonate-User')
        if not name:
            return user
        if not self.authorizer.allowed(user[0], user[1], 'impersonate', '', 'users', '', name):
            raise ApiError(403, 'Forbidden', 'users "{0}" is forbidden: User "{1}" cannot impersonate resource "users" '
                           'in API group "" at the cluster scope'.format(name, user[0]), {'name': name, 'kind': 'users'})
        groups = request.headers.getall('Impersonate-Group', [])
        if name.startswith('system:serviceaccount:'):
            groups += ['system:serviceaccounts', 'system:serviceaccounts:' + name.split(':')[2]]
        return name, groups + ['system:authenticated']

    def _user(self, request):
        header = request.headers.get('Authorization', '')
        if header.lower().startswith('bearer '):
            token = header[7:].strip()
            user = self.token_user(token)
            # A token for other audiences (e.g. Vault's) is no credential for the API server itself.
            if user and auth.ISSUER not in self.token_audiences(self.api.signer.verify(token)):
                return None
            return user
        ssl_object = request.transport.get_extra_info('ssl_object') if request.transport else None
        user = auth.user_of_peercert(ssl_object.getpeercert() if ssl_object else None)
        return (user[0], user[1] + ['system:authenticated']) if user else None

    def token_user(self, token):
        """(user, groups) of a valid ServiceAccount token whose account still exists, else None.

        A long-lived token (from a token Secret) is valid only while its Secret exists and still holds it."""
        claims = self.api.signer.verify(token) if self.api.signer else None
        if not claims:
            return None
        if claims.get('iss') == auth.LEGACY_ISSUER:
            prefix = auth.LEGACY_PREFIX
            namespace = claims.get(prefix + 'namespace')
            account = {'name': claims.get(prefix + 'service-account.name'),
                       'uid': claims.get(prefix + 'service-account.uid')}
            secret = self.api.store.get(('', 'secrets'), namespace, claims.get(prefix + 'secret.name'))
            stored = ((secret or {}).get('data') or {}).get('token', '')
            if secret is None or base64.b64decode(stored).decode(errors='replace') != token:
                return None
        else:
            info = claims.get('kubernetes.io', {})
            namespace, account = info.get('namespace'), info.get('serviceaccount', {})
        current = self.api.store.get(('', 'serviceaccounts'), namespace, account.get('name'))
        if current is None or current['metadata']['uid'] != account.get('uid'):
            return None
        return (claims['sub'], ['system:serviceaccounts', 'system:serviceaccounts:' + namespace,
                                'system:authenticated'])

    @staticmethod
    def token_audiences(claims):
        """A token's audiences; long-lived tokens carry none and are good for the API server's own."""
        if 'aud' not in claims:
            return [auth.ISSUER]
        return [claims['aud']] if isinstance(claims['aud'], str) else list(claims['aud'])

    # discovery

    async def healthz(self, request):
        return web.Response(text='ok', content_type='text/plain')

    async def version(self, request):
        return json_response(VERSION)

    async def core_versions(self, request):
        return json_response({'kind': 'APIVersions', 'versions': ['v1'], 'serverAddressByClientCIDRs': [
            {'clientCIDR': '0.0.0.0/0', 'serverAddress': '{0}:{1}'.format(self.address, self.port)}]})

    async def groups(self, request):
        groups = [group_entry(g, v) for g, v in self.api.registry.group_versions().items() if g]
        return json_response({'kind': 'APIGroupList', 'apiVersion': 'v1', 'groups': groups})

    async def openapi_root(self, request):
        paths = {}
        for group, versions in self.api.registry.group_versions().items():
            for version in versions:
                key = 'apis/{0}/{1}'.format(group, version) if group else 'api/' + version
                digest = hashlib.sha512(json.dumps(openapi_document(self.api.registry, group, version),
                                                   sort_keys=True).encode()).hexdigest().upper()[:128]
                paths[key] = {'serverRelativeURL': '/openapi/v3/{0}?hash={1}'.format(key, digest)}
        return json_response({'paths': paths})

    async def openapi_group_version(self, request):
        parts = request.match_info['gv'].split('/')
        if parts[0] == 'api' and len(parts) == 2:
            document = openapi_document(self.api.registry, '', parts[1])
        elif parts[0] == 'apis' and len(parts) == 3:
            document = openapi_document(self.api.registry, parts[1], parts[2])
        else:
            document = None
        if document is None:
            raise web.HTTPNotFound()
        return json_response(document)

    # resources

    async def resource(self, request):
        parts = [p for p in request.path.split('/') if p]
        if request.method == 'GET' and parts[:1] == ['apis'] and len(parts) in (2, 3):
            return self._group_discovery(parts)
        if request.method == 'GET' and parts[:1] == ['api'] and len(parts) == 2:
            found = resource_list(self.api.registry, '', parts[1])
            if found is None:
                raise web.HTTPNotFound()
            return json_response(found)
        target = parse_path(request.path)
        if target is None:
            raise web.HTTPNotFound()
        group, version, namespace, plural, name, sub = target
        rtype = self.api.registry.get(group, version, plural)
        if rtype is None or (namespace and not rtype.namespaced) or (sub and sub not in rtype.subresources):
            raise web.HTTPNotFound()
        if rtype.namespaced and name and not namespace and plural != 'namespaces':
            raise web.HTTPNotFound()
        verb = self._verb(request, name, sub)
        if verb not in rtype.verbs and not sub:
            raise ApiError(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource',
                           {})
        user, groups = request['user']
        self.authorizer.check(user, groups, 'create' if verb == 'token' else verb, rtype, namespace, name, sub)
        if sub == 'scale':
            return await self.scale(request, rtype, namespace, name, verb)
        if sub == 'eviction':
            if verb != 'create':
                raise ApiError(405, 'MethodNotAllowed', 'the server does not allow this method on the requested '
                                                        'resource', {})
            return json_response(eviction.evict(self.api, namespace, name, await self._body(request, kind='Eviction'),
                                                self._options(request)['dry_run']), 201)
        if sub == 'log':
            # Nothing runs in the emulated pods, so they have written nothing.
            self.api.get(rtype, namespace, name)
            return web.Response(text='', content_type='text/plain')
        handler = getattr(self, 'do_' + verb.replace('-', '_'))
        return await handler(request, rtype, namespace, name, sub)

    def _group_discovery(self, parts):
        if len(parts) == 3:
            found = resource_list(self.api.registry, parts[1], parts[2])
            if found is None:
                raise web.HTTPNotFound()
            return json_response(found)
        versions = self.api.registry.group_versions().get(parts[1])
        if not versions:
            raise web.HTTPNotFound()
        return json_response(dict(group_entry(parts[1], versions), kind='APIGroup', apiVersion='v1'))

    @staticmethod
    def _verb(request, name, sub):
        method = request.method
        if method == 'GET':
            if name:
                return 'get'
            return 'watch' if flag(request.query, 'watch') else 'list'
        if method == 'POST':
            return 'token' if sub == 'token' else 'create'
        if method == 'PUT':
            return 'update'
        if method == 'PATCH':
            return 'patch'
        if method == 'DELETE':
            return 'delete' if name else 'deletecollection'
        raise ApiError(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource', {})

    @staticmethod
    async def _body(request, allow_list=False, kind=''):
        raw = await request.read()
        if 'protobuf' in request.headers.get('Content-Type', ''):
            try:
                return protobuf.decode(raw, kind)
            except protobuf.ProtobufError as exc:
                raise ApiError(415, 'UnsupportedMediaType', 'the body of the request was in an unknown format - '
                               'accepted media types include: application/json, application/yaml ({0})'.format(exc),
                               {}) from None
        if not raw.strip():
            return {}
        try:
            # Keys a JSON object repeats are the strict decoder's `duplicate field` (see _decoded).
            body, request['duplicates'] = builtin.plain(json.loads(raw, object_pairs_hook=builtin.Fields.of))
        except ValueError:
            try:
                body = yaml.safe_load(raw)
            except yaml.YAMLError as exc:
                raise errors.bad_request('the body of the request could not be decoded: {0}'.format(exc)) from None
        if not isinstance(body, dict) and not (allow_list and isinstance(body, list)):
            raise errors.bad_request('the body of the request must be an object')
        return body

    @staticmethod
    def _manager(request):
        given = request.query.get('fieldManager')
        if given:
            return given
        return request.headers.get('User-Agent', 'unknown').split('/')[0] or 'unknown'

    @staticmethod
    def _options(request):
        """dryRun and fieldValidation of a write; `warnings` collects the Warning headers of the response."""
        query = request.query
        directive = query.get('fieldValidation', '')
        if directive not in ('',) + builtin.DIRECTIVES:
            kind = {'POST': 'CreateOptions', 'PUT': 'UpdateOptions'}.get(request.method, 'PatchOptions')
            cause = 'Unsupported value: "{0}": supported values: "", "Ignore", "Strict", "Warn"'.format(directive)
            raise ApiError(422, 'Invalid', '{0}.meta.k8s.io "" is invalid: fieldValidation: {1}'.format(kind, cause), {
                'group': 'meta.k8s.io', 'kind': kind,
                'causes': [{'reason': 'FieldValueNotSupported', 'message': cause, 'field': 'fieldValidation'}]})
        warnings = request.setdefault('warnings', [])
        return {'dry_run': query.get('dryRun') == 'All', 'strict': directive == 'Strict',
                'directive': directive or 'Warn', 'warnings': warnings}

    def _filtered(self, request, rtype, namespace):
        labels = selectors.parse_labels(request.query.get('labelSelector', ''))
        fields = selectors.parse_fields(request.query.get('fieldSelector', ''), EXTRA_FIELDS)
        return lambda obj: selectors.labels_match(labels, obj['metadata'].get('labels')) and \
            selectors.fields_match(fields, obj)

    async def do_get(self, request, rtype, namespace, name, sub):
        obj = self.api.get(rtype, namespace, name)
        if self._wants_table(request):
            return json_response(table(rtype, [obj], self.api.store.resource_version))
        return json_response(obj)

    async def do_list(self, request, rtype, namespace, name, sub):
        try:
            keep = self._filtered(request, rtype, namespace)
        except selectors.SelectorError as exc:
            raise errors.bad_request(str(exc)) from None
        items = [o for o in self.api.store.list(rtype.key, namespace) if keep(o)]
        items, meta = self._page(request, items)
        items = [self.api.served_as(rtype, o) for o in items]
        if self._wants_table(request):
            return json_response(dict(table(rtype, items, self.api.store.resource_version), metadata=meta))
        return json_response({'kind': rtype.kind + 'List', 'apiVersion': rtype.group_version, 'metadata': meta,
                              'items': items})

    def _page(self, request, items):
        """One page of a list (`limit`, `continue`) and the list's metadata."""
        meta = {'resourceVersion': self.api.store.resource_version}
        token = request.query.get('continue')
        if token:
            try:
                state = json.loads(base64.urlsafe_b64decode(token.encode()))
                after, meta['resourceVersion'] = tuple(state['start']), str(state['rv'])
            except (ValueError, KeyError, TypeError):
                raise errors.bad_request('continue key is not valid') from None
            items = [o for o in items if (o['metadata'].get('namespace', ''), o['metadata']['name']) > after]
        try:
            limit = int(request.query.get('limit') or 0)
        except ValueError:
            raise errors.bad_request('limit must be an integer') from None
        if 0 < limit < len(items):
            last = items[limit - 1]['metadata']
            state = {'rv': int(meta['resourceVersion']), 'start': [last.get('namespace', ''), last['name']]}
            meta['continue'] = base64.urlsafe_b64encode(json.dumps(state).encode()).decode()
            meta['remainingItemCount'] = len(items) - limit
            items = items[:limit]
        return items, meta

    @staticmethod
    def _wants_table(request):
        return 'as=Table' in request.headers.get('Accept', '')

    async def do_watch(self, request, rtype, namespace, name, sub):
        try:
            keep = self._filtered(request, rtype, namespace)
            initial = flag(request.query, 'sendInitialEvents')
            watcher = self.api.store.watch(rtype.key, namespace, None if initial else request.query.get(
                'resourceVersion'))
            if initial:
                # A watch-list client waits for this bookmark: the initial state is complete.
                watcher.queue.put_nowait(('BOOKMARK', {'metadata': {
                    'resourceVersion': self.api.store.resource_version,
                    'annotations': {'k8s.io/initial-events-end': 'true'}}}))
        except selectors.SelectorError as exc:
            raise errors.bad_request(str(exc)) from None
        except Expired as exc:
            response = await self._stream_start(request)
            gone = ApiError(410, 'Expired', str(exc)).status()
            await response.write(json.dumps({'type': 'ERROR', 'object': gone}).encode() + b'\n')
            return response
        table = self._wants_table(request)
        bookmarks = flag(request.query, 'allowWatchBookmarks')
        timeout = float(request.query.get('timeoutSeconds') or WATCH_TIMEOUT)
        deadline = asyncio.get_running_loop().time() + timeout
        response = await self._stream_start(request)
        try:
            while True:
                left = deadline - asyncio.get_running_loop().time()
                if left <= 0:
                    break
                try:
                    event, obj = await asyncio.wait_for(watcher.queue.get(), min(left, BOOKMARK_SECONDS))
                except asyncio.TimeoutError:
                    if not bookmarks or left <= BOOKMARK_SECONDS:
                        continue
                    # A quiet watch tells the client how far it has seen, so it resumes from there.
                    event, obj = 'BOOKMARK', {'metadata': {'resourceVersion': self.api.store.resource_version}}
                if event == 'BOOKMARK':
                    obj = self.api.served_as(rtype, obj)
                elif not keep(obj):
                    continue
                else:
                    obj = self.api.served_as(rtype, obj)
                if table and event != 'BOOKMARK':
                    obj = table(rtype, [obj], self.api.store.resource_version)
                await response.write(json.dumps({'type': event, 'object': obj}).encode() + b'\n')
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self.api.store.unwatch(watcher)
        return response

    @staticmethod
    async def _stream_start(request):
        response = web.StreamResponse(headers={'Content-Type': 'application/json', 'Cache-Control': 'no-cache'})
        response.enable_chunked_encoding()
        await response.prepare(request)
        return response

    async def do_create(self, request, rtype, namespace, name, sub):
        body = await self._body(request, kind=rtype.kind)
        if rtype.kind == 'TokenReview':
            return json_response(self._token_review(body), 201)
        if rtype.kind in REVIEWS:
            return json_response(getattr(self, '_' + REVIEWS[rtype.kind])(request, rtype, body), 201)
        self._check_kind(rtype, body)
        self._decoded(request, rtype)
        obj = self.api.create(rtype, namespace, body, self._manager(request), **self._options(request))
        return json_response(obj, 201)

    def _decoded(self, request, rtype):
        """A create or update body's duplicate fields, answered as fieldValidation says (built-in kinds)."""
        if not rtype.crd:
            options = self._options(request)
            builtin.check_duplicates(rtype, request.get('duplicates') or [], options['strict'],
                                     options['warnings'] if options['directive'] == 'Warn' else None)

    @staticmethod
    def _check_kind(rtype, body):
        if body.get('kind') and body['kind'] != rtype.kind:
            raise errors.bad_request('the body of the request kind {0} does not match the resource {1}'.format(
                body['kind'], rtype.plural))

    def _token_review(self, body):
        """Authenticates spec.token for spec.audiences (the API server's own audience when none are given)."""
        spec = body.get('spec') or {}
        token = spec.get('token', '')
        user = self.token_user(token)
        status = {'authenticated': False, 'user': {}}
        wanted = spec.get('audiences') or [auth.ISSUER]
        if user:
            claims = self.api.signer.verify(token)
            audiences = self.token_audiences(claims)
            matched = [a for a in wanted if a in audiences]
            if matched:
                uid = claims['kubernetes.io']['serviceaccount']['uid'] if 'kubernetes.io' in claims else \
                    claims[auth.LEGACY_PREFIX + 'service-account.uid']
                status = {'authenticated': True, 'audiences': matched, 'user': {
                    'username': user[0], 'uid': uid, 'groups': user[1]}}
            else:
                status['error'] = '[invalid bearer token, token audiences {0} is invalid for the target audiences ' \
                                  '{1}]'.format(json.dumps(audiences), json.dumps(wanted))
        else:
            status['error'] = 'invalid bearer token'
        return {'kind': 'TokenReview', 'apiVersion': 'authentication.k8s.io/v1',
                'metadata': {'creationTimestamp': None}, 'spec': spec, 'status': status}

    @staticmethod
    def _review(rtype, body, status):
        return {'kind': rtype.kind, 'apiVersion': rtype.group_version, 'metadata': {'creationTimestamp': None},
                'spec': body.get('spec') or {}, 'status': status}

    def _self_subject(self, request, rtype, body):
        user, groups = request['user']
        return {'kind': rtype.kind, 'apiVersion': rtype.group_version, 'metadata': {'creationTimestamp': None},
                'status': {'userInfo': {'username': user, 'groups': groups}}}

    def _access(self, request, rtype, body):
        spec = body.get('spec') or {}
        if rtype.kind == 'SelfSubjectAccessReview':
            user, groups = request['user']
        else:
            user, groups = spec.get('user', ''), spec.get('groups') or []
        attributes = spec.get('resourceAttributes')
        if attributes is None:
            # Non-resource URLs (discovery, health) are open to every authenticated user.
            allowed = 'system:authenticated' in groups or 'system:masters' in groups
        else:
            resource = attributes.get('resource', '') + ('/' + attributes['subresource']
                                                         if attributes.get('subresource') else '')
            allowed = self.authorizer.allowed(user, groups, attributes.get('verb', ''), attributes.get('group', ''),
                                              resource, attributes.get('namespace', ''), attributes.get('name', ''))
        return self._review(rtype, body, {'allowed': allowed})

    def _rules(self, request, rtype, body):
        namespace = (body.get('spec') or {}).get('namespace')
        if not namespace:
            raise ApiError(400, 'BadRequest', 'no namespace on request', {})
        user, groups = request['user']
        resource_rules, non_resource_rules = self.authorizer.rules_for(user, groups, namespace)
        return self._review(rtype, body, {'resourceRules': resource_rules, 'nonResourceRules': non_resource_rules,
                                          'incomplete': False})

    @staticmethod
    def _scale_of(rtype, obj):
        paths = rtype.scale
        selector = json_path(obj, paths.get('labelSelectorPath', '')) if paths.get('labelSelectorPath') else \
            ','.join('{0}={1}'.format(k, v) for k, v in sorted(
                (((obj.get('spec') or {}).get('selector') or {}).get('matchLabels') or {}).items()))
        meta = {k: obj['metadata'][k] for k in ('name', 'namespace', 'uid', 'resourceVersion', 'creationTimestamp')
                if k in obj['metadata']}
        return {'kind': 'Scale', 'apiVersion': 'autoscaling/v1', 'metadata': meta,
                'spec': {'replicas': json_path(obj, paths['specReplicasPath']) or 0},
                'status': {'replicas': json_path(obj, paths.get('statusReplicasPath', '')) or 0,
                           'selector': selector}}

    async def scale(self, request, rtype, namespace, name, verb):
        """The scale subresource (autoscaling/v1 Scale) over an object's replica count."""
        obj = self.api.get(rtype, namespace, name)
        if verb == 'get':
            return json_response(self._scale_of(rtype, obj))
        content_type = request.headers.get('Content-Type', '').split(';')[0].strip()
        body = await self._body(request, allow_list=content_type == patches.JSON_PATCH)
        if verb == 'patch':
            current = self._scale_of(rtype, obj)
            body = patches.json_patch(current, body) if content_type == patches.JSON_PATCH else \
                patches.merge_patch(current, body)
        elif verb != 'update':
            raise ApiError(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource',
                           {})
        replicas = (body.get('spec') or {}).get('replicas')
        if not isinstance(replicas, int) or replicas < 0:
            raise errors.invalid(rtype, name, [('spec.replicas', 'Invalid value: {0!r}: must be greater than or equal '
                                                'to 0'.format(replicas), 'FieldValueInvalid')])
        given = (body.get('metadata') or {}).get('resourceVersion')
        if given and given != obj['metadata']['resourceVersion']:
            raise errors.conflict(rtype, name)
        node = obj
        parts = rtype.scale['specReplicasPath'].strip('.').split('.')
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = replicas
        updated = self.api.replace(rtype, namespace, name, obj, self._manager(request), 'scale',
                                   **self._options(request))
        return json_response(self._scale_of(rtype, updated))

    async def do_token(self, request, rtype, namespace, name, sub):
        body = await self._body(request, kind='TokenRequest')
        account = self.api.get(rtype, namespace, name)
        spec = body.get('spec') or {}
        seconds = int(spec.get('expirationSeconds') or auth.TOKEN_SECONDS)
        token, claims = self.api.signer.issue(namespace, name, account['metadata']['uid'], spec.get('audiences'),
                                              seconds)
        expires = datetime.datetime.fromtimestamp(claims['exp'], datetime.timezone.utc)
        return json_response({'kind': 'TokenRequest', 'apiVersion': 'authentication.k8s.io/v1',
                              'metadata': {'name': name, 'namespace': namespace,
                                           'creationTimestamp': None},
                              'spec': dict(spec, audiences=claims['aud'], expirationSeconds=seconds),
                              'status': {'token': token,
                                         'expirationTimestamp': expires.strftime('%Y-%m-%dT%H:%M:%SZ')}}, 201)

    async def do_update(self, request, rtype, namespace, name, sub):
        body = await self._body(request, kind=rtype.kind)
        self._check_kind(rtype, body)
        self._decoded(request, rtype)
        if sub == 'finalize':
            sub = ''
        obj = self.api.replace(rtype, namespace, name, body, self._manager(request), sub, **self._options(request))
        return json_response(obj)

    async def do_patch(self, request, rtype, namespace, name, sub):
        content_type = request.headers.get('Content-Type', '').split(';')[0].strip()
        body = await self._body(request, allow_list=content_type == patches.JSON_PATCH)
        manager = request.query.get('fieldManager')
        if content_type != patches.APPLY_PATCH:
            manager = self._manager(request)
        obj, created = self.api.patch(rtype, namespace, name, body, content_type, manager, sub or '',
                                      force=flag(request.query, 'force'), **self._options(request))
        return json_response(obj, 201 if created else 200)

    async def _delete_options(self, request):
        """DeleteOptions from the request body, or from the query when there is no body; refused as the API
        server refuses them."""
        options = await self._body(request, kind='DeleteOptions')
        if not options:
            query = request.query
            options = {key: query[key] for key in ('propagationPolicy', 'orphanDependents') if key in query}
            if 'orphanDependents' in options:
                options['orphanDependents'] = flag(query, 'orphanDependents')
            options['dryRun'] = query.getall('dryRun', [])
        for field, (json_type, go_type) in DELETE_OPTION_TYPES.items():
            value = options.get(field)
            if value is not None and not (isinstance(value, json_type) and not (json_type is int and isinstance(
                    value, bool)) and (field != 'dryRun' or all(isinstance(v, str) for v in value))):
                raise errors.bad_request('json: cannot unmarshal {0} into Go struct field DeleteOptions.{1} of type '
                                         '{2}'.format(_json_type(value), field, go_type))
        policy, orphan, dry_run = options.get('propagationPolicy'), options.get('orphanDependents'), \
            options.get('dryRun') or []
        causes = []
        if policy is not None and orphan is not None:
            causes.append(('propagationPolicy', 'Invalid value: "{0}": orphanDependents and deletionPropagation '
                           'cannot be both set'.format(policy), 'FieldValueInvalid'))
        if policy is not None and policy not in ('Foreground', 'Background', 'Orphan'):
            causes.append(('propagationPolicy', 'Unsupported value: "{0}": supported values: "Foreground", '
                           '"Background", "Orphan", "nil"'.format(policy), 'FieldValueNotSupported'))
        if any(v != 'All' for v in dry_run):
            causes.append(('dryRun', 'Unsupported value: []string{{{0}}}: supported values: "All"'.format(
                ', '.join('"{0}"'.format(v) for v in dry_run)), 'FieldValueNotSupported'))
        if causes:
            refused = errors.invalid(DELETE_OPTIONS, '', causes)
            refused.details.pop('name')
            raise refused
        return {'propagation': policy, 'orphan_dependents': orphan, 'preconditions': options.get('preconditions'),
                'dry_run': bool(dry_run)}

    async def do_delete(self, request, rtype, namespace, name, sub):
        options = await self._delete_options(request)
        obj, gone = self.api.delete(rtype, namespace, name, **options)
        # 202 only for what was asked to cascade (orphanDependents=false) and is not gone yet, as the API server does.
        return json_response(obj, 202 if not gone and options['orphan_dependents'] is False else 200)

    async def do_deletecollection(self, request, rtype, namespace, name, sub):
        try:
            keep = self._filtered(request, rtype, namespace)
        except selectors.SelectorError as exc:
            raise errors.bad_request(str(exc)) from None
        options = await self._delete_options(request)
        options.pop('preconditions')
        deleted = []
        for obj in self.api.store.list(rtype.key, namespace):
            if keep(obj):
                deleted.append(self.api.delete(rtype, obj['metadata'].get('namespace'), obj['metadata']['name'],
                                               **options)[0])
        return json_response({'kind': rtype.kind + 'List', 'apiVersion': rtype.group_version,
                              'metadata': {'resourceVersion': self.api.store.resource_version}, 'items': deleted})

