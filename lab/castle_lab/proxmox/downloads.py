"""download-url that really downloads: a loopback URL fetched, its checksum verified, the file stored on the
node's storage."""

import asyncio
import hashlib
import ipaddress
import os
import re
import ssl
import urllib.parse

import aiohttp
from fakepve import TaskError
from fakepve.formats import split_list
from fakepve.routing import die, param_error
from fakepve.storage import TEMPLATE_EXT

# download-url's file names per content type (PVE::API2::Storage::Status, PVE::Storage's *_EXT_RE).
DOWNLOAD_NAMES = {
    'iso': (re.compile(r'[^/]+\.(?:iso|img)$', re.I), 'wrong file extension'),
    'vztmpl': (re.compile(r'[^/]+' + TEMPLATE_EXT + '$'), 'wrong file extension'),
    'import': (re.compile(r'[-a-zA-Z0-9_.+=]+\.(?:ova|ovf|qcow2|raw|vmdk)$'), 'invalid filename or wrong extension'),
}
CHECKSUMS = ('md5', 'sha1', 'sha224', 'sha256', 'sha384', 'sha512')
# Exit codes of wget, which PVE downloads with: network failure, TLS verification failure, an HTTP error.
WGET_NETWORK, WGET_TLS, WGET_SERVER = 4, 5, 8



class Downloads:
    """LabPve's POST /nodes/{node}/storage/{storage}/download-url."""


    async def _download_url(self, request):
        """POST /nodes/{node}/storage/{storage}/download-url as pve-storage's download_url and pve-common's
        download_file_from_url: the file is fetched (loopback URLs only), its checksum verified, and stored
        on that node's storage; an existing file is refused unless its checksum is the one given."""
        from fakepve.server import USER, ok, params
        node, name = request.match_info['node'], request.match_info['storage']
        user = request[USER]
        self.require(user, '/storage/' + name, 'Datastore.AllocateTemplate')
        self.require(user, '/', 'Sys.Audit')
        self.require(user, '/', 'Sys.Modify')
        p = self._verify(request, await params(request))
        for one, other in (('checksum', 'checksum-algorithm'), ('checksum-algorithm', 'checksum')):
            if p.get(one) and not p.get(other):
                raise param_error(**{other: "missing property - '{0}' requires this property".format(one)})
        store = self._active_store(name, node)
        self._need_file_storage(store, "can't upload to storage type '{0}', not a file based storage!")
        content, url = p['content'], p['url']
        if content not in split_list(store.get('content') or ''):
            raise die("storage '{0}' is not configured for content-type '{1}'".format(name, content))
        filename = re.sub(r'[^-a-zA-Z0-9_.]', '_', p['filename'])
        pattern, complaint = DOWNLOAD_NAMES[content]
        if not pattern.fullmatch(filename):
            raise param_error(filename=complaint)
        volname = '{0}/{1}'.format(content, filename)
        dest = self._volume_path(name, volname, content)
        algorithm, expected = p.get('checksum-algorithm'), (p.get('checksum') or '').lower()
        verify = p.get('verify-certificates', 1) not in (0, '0', False)

        async def body():
            self.task_log('downloading {0} to {1}'.format(url, dest))
            if volname in self._volumes(name):
                if not algorithm:
                    raise TaskError("refusing to override existing file '{0}'".format(dest))
                got = hashlib.new(algorithm, self.volume_bytes(node, '{0}:{1}'.format(name, volname)) or b'') \
                    .hexdigest()
                if got != expected:
                    self.task_log('calculating checksum of existing file...')
                    raise TaskError("checksum mismatch: got '{0}' != expect '{1}', aborting".format(got, expected))
                self.task_log('calculating checksum of existing file...OK, got correct file already, '
                              'no need to download')
                return None
            data = await self._fetch(url, verify)
            if algorithm:
                got = hashlib.new(algorithm, data).hexdigest()
                if got != expected:
                    self.task_log('calculating checksum...')
                    raise TaskError("checksum mismatch: got '{0}' != expect '{1}'".format(got, expected))
                self.task_log('calculating checksum...OK, checksum verified')
            self._store_download(node, name, content, filename, data)
            return "download of '{0}' to '{1}' finished".format(url, dest)
        return ok(await self.task(node, 'download', filename.replace(':', '\\x3a'), user, body))

    async def _fetch(self, url, verify):
        """The body at the URL, as wget would fetch it; only loopback hosts are reached from the lab."""
        host = urllib.parse.urlsplit(url).hostname or ''
        try:
            loopback = host == 'localhost' or ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            self.task_log('the lab downloads from loopback addresses only, not {0!r}'.format(host))
            raise TaskError('download failed: exit code {0}'.format(WGET_NETWORK))
        context = False
        if verify and url.startswith('https:'):
            context = ssl.create_default_context(cafile=self.ca_file) if self.ca_file else ssl.create_default_context()
        try:
            async with aiohttp.ClientSession() as session:
                async with session.get(url, ssl=context, timeout=aiohttp.ClientTimeout(total=300)) as response:
                    if response.status >= 400:
                        self.task_log('ERROR {0}: {1}.'.format(response.status, response.reason))
                        raise TaskError('download failed: exit code {0}'.format(WGET_SERVER))
                    return await response.read()
        except aiohttp.ClientSSLError as exc:
            self.task_log('ERROR: cannot verify {0}\'s certificate: {1}'.format(host, exc))
            raise TaskError('download failed: exit code {0}'.format(WGET_TLS)) from None
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            self.task_log('failed: {0}.'.format(exc))
            raise TaskError('download failed: exit code {0}'.format(WGET_NETWORK)) from None

    def _store_download(self, node, name, content, filename, data):
        """Put the downloaded bytes on the node's storage: a real file under storage_dir, or kept in memory."""
        self.store_file(name, filename, len(data), content)
        record = self.storages[name]['volumes']['{0}/{1}'.format(content, filename)]
        if self.storage_dir:
            path = os.path.join(self.storage_dir, node, name, content, filename)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, 'wb') as handle:
                handle.write(data)
            record['path'] = path
        else:
            record['data'] = data
