"""The lab's Kubernetes API process: castle_lab.kube served over HTTPS with client-certificate and token auth,
its controllers on the same event loop, and the control API (faults, External Secrets' Vault requests) beside it."""

import asyncio
import json
import logging
import shutil
import ssl

from aiohttp import web
from cryptography.hazmat.primitives import serialization

from ...serving import service_parser, stop_event
from ..api import snapshot
from ..api.auth import TokenSigner
from ..api.objects import KubeApi
from ..controllers.eso.vault import VaultRequests
from ..controllers.failures import Failures
from ..controllers.manager import Manager
from ..controllers.suite import all_controllers
from .app import KubeServer
from .faults import Faults


def tls_context(args):
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=args.client_ca)
    context.load_cert_chain(args.cert, args.key)
    # Client certificates are one way in; bearer tokens are the other, so a certificate is optional.
    context.verify_mode = ssl.CERT_OPTIONAL
    return context


async def serve(args):
    with open(args.sa_key, 'rb') as handle:
        signer = TokenSigner(serialization.load_pem_private_key(handle.read(), None))
    pod_security = None
    if args.pod_security_config:
        with open(args.pod_security_config) as handle:
            pod_security = json.load(handle)
    with open(args.client_ca) as handle:
        api = KubeApi(signer, handle.read(), seed_node=not args.no_seed_node, pod_security=pod_security)
    if args.restore_from:
        # The objects of a restored etcd: there before the controllers start.
        with open(args.restore_from, 'rb') as handle:
            snapshot.restore(api, handle.read())
    faults = Faults()
    if args.artifact_dir:
        # Artifacts belong to objects held in memory: a new server starts without either.
        shutil.rmtree(args.artifact_dir, ignore_errors=True)
    vault_requests = VaultRequests()
    failures = Failures()
    volume_data = []
    controllers = Manager(api.store, all_controllers(api, args.artifact_dir, args.kubectl, vault_requests, failures,
                                                     (args.host, args.port), args.storage_dir, volume_data))
    controllers.start()
    runner = web.AppRunner(KubeServer(api, args.host, args.port, faults).app(), access_log=None,
                           shutdown_timeout=1)
    await runner.setup()
    await web.TCPSite(runner, args.host, args.port, ssl_context=tls_context(args)).start()
    control_app = faults.app()
    vault_requests.routes(control_app)
    failures.routes(control_app)
    for routes in volume_data:
        routes.routes(control_app)

    async def dump(_request):
        return web.Response(body=snapshot.dump(api.store), content_type='application/octet-stream')
    control_app.router.add_get('/snapshot', dump)
    control = web.AppRunner(control_app, access_log=None)
    await control.setup()
    await web.TCPSite(control, args.host, args.control_port).start()
    stopping = stop_event()
    print('kube: listening on https://{0}:{1}, control API on http://{0}:{2}'.format(
        args.host, args.port, args.control_port), flush=True)
    await stopping.wait()
    await controllers.stop()
    await control.cleanup()
    await runner.cleanup()


def main():
    parser = service_parser(__doc__, ('--host', '--cert', '--key', '--client-ca', '--sa-key'), 6443, 6444)
    parser.add_argument('--artifact-dir', help='where the Flux source controller stores artifacts')
    parser.add_argument('--kubectl', default='kubectl', help='the kubectl that builds Flux Kustomizations')
    parser.add_argument('--no-seed-node', action='store_true',
                        help='start without the castle-lab-node Node (nodes register themselves)')
    parser.add_argument('--pod-security-config',
                        help='the PodSecurity admission plugin\'s configuration (JSON); without it, the one Talos '
                             'generates')
    parser.add_argument('--storage-dir',
                        help='the nodes\' Longhorn disks: replica data under <dir>/nodes/<node>/replicas/; without '
                             'it, no Longhorn volumes')
    parser.add_argument('--restore-from',
                        help='start with the objects of this snapshot database (etcd restored from a snapshot)')
    logging.basicConfig(level=logging.INFO, format='%(asctime)s %(name)s %(levelname)s %(message)s')
    asyncio.run(serve(parser.parse_args()))


if __name__ == '__main__':
    main()
