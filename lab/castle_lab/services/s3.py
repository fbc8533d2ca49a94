"""An S3-compatible object store for backups: moto's S3 server (castle_lab.s3.server, run by the Python of its own
environment in the lab's tools, since moto's botocore and the lab's kubernetes client want different python-dateutil
majors), HTTPS from the lab CA, one bucket, one access key, and an outage switch on its control API."""

import json
import os
import urllib.error
import urllib.request

from .. import pki
from ..config import REPO
from ..process import LabError
from .base import Service

BUCKET = 'castle-backups'
REGION = 'us-east-1'


class S3Service(Service):
    name = 's3'
    host = 7
    port = 9000
    control_port = port + 1

    @property
    def url(self):
        return 'https://{0}:{1}'.format(self.address, self.port)

    @property
    def python(self):
        return self.cfg.tools / 's3' / 'bin' / 'python'

    @property
    def access_key_file(self):
        return self.dir / 'access-key'

    @property
    def secret_key_file(self):
        return self.dir / 'secret-key'

    def prepare(self):
        if not self.python.exists():
            raise LabError('s3: no moto server environment at {0} (make setup installs it)'.format(
                self.python.parent.parent))
        self.dir.chmod(0o700)
        self.cert, self.key = pki.issue_server_cert(self.cfg, self.dir, 's3', [self.address])
        # The store keeps nothing across a restart: the new process writes a new key.
        for path in (self.access_key_file, self.secret_key_file):
            path.unlink(missing_ok=True)

    def command(self):
        return [str(self.python), '-m', 'castle_lab.s3.server', '--host', self.address, '--port', str(self.port),
                '--control-port', str(self.control_port), '--cert', str(self.cert), '--key', str(self.key),
                '--ca', str(self.cfg.ca_cert), '--dir', str(self.dir), '--bucket', BUCKET, '--region', REGION]

    def launch_env(self):
        return dict(os.environ, PYTHONPATH=str(REPO / 'lab'))

    def credentials(self):
        try:
            return self.access_key_file.read_text().strip(), self.secret_key_file.read_text().strip()
        except OSError as exc:
            raise LabError('s3: no access key at {0}; run castle-lab up'.format(self.access_key_file)) from exc

    def client(self):
        """A real S3 client (MinIO's SDK) with the lab's key, verifying the lab CA."""
        import minio
        import urllib3
        access, secret = self.credentials()
        http = urllib3.PoolManager(cert_reqs='CERT_REQUIRED', ca_certs=str(self.cfg.ca_cert),
                                   timeout=urllib3.Timeout(connect=5, read=10), retries=False)
        return minio.Minio('{0}:{1}'.format(self.address, self.port), access_key=access, secret_key=secret,
                           region=REGION, secure=True, http_client=http)

    def outage(self, down=None):
        """Whether the store is off the network; with `down`, take it off (True) or bring it back (False) first."""
        method = {None: 'GET', True: 'PUT', False: 'DELETE'}[down]
        request = urllib.request.Request(self.control_url + '/outage', method=method)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return json.load(response)['down']
        except (OSError, urllib.error.URLError, ValueError) as exc:
            raise LabError('s3: control API at {0}: {1}'.format(self.control_url, exc)) from exc

    def check(self):
        import minio.error
        import urllib3
        try:
            if not self.client().bucket_exists(BUCKET):
                raise LabError('bucket {0} is missing'.format(BUCKET))
        except (OSError, urllib3.exceptions.HTTPError, minio.error.MinioException) as exc:
            raise LabError(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__) from exc
        return 'bucket {0} at {1}, control API at {2}'.format(BUCKET, self.url, self.control_url)

    def files(self):
        return dict(super().files(), access_key=self.access_key_file, secret_key=self.secret_key_file)

    def env(self):
        access, secret = self.credentials()
        return {'CASTLE_S3_URL': self.url, 'CASTLE_S3_BUCKET': BUCKET, 'CASTLE_S3_REGION': REGION,
                'CASTLE_S3_ACCESS_KEY': access, 'CASTLE_S3_SECRET_KEY': secret, 'CASTLE_S3_CA': str(self.cfg.ca_cert),
                'CASTLE_LAB_S3_CONTROL': self.control_url}
