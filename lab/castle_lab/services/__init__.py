"""The lab's services, in the order `castle-lab up` starts them: how each is prepared, started, checked and which
variables it exports.

    base      Service: the life cycle every service shares
    vault     a real OpenBao server
    factory   the Talos Image Factory (castle_lab.talos.factory)
    proxmox   the Proxmox VE (castle_lab.proxmox)
    git       the Git host (castle_lab.git)
    s3        the S3 object store for backups (castle_lab.s3: moto's server)
    openclaw  sshd with the openclaw CLI (and its gateway)
    kube      the Kubernetes API (castle_lab.kube)
    mesh      the fleet mesh's namespace hosts (castle_lab.mesh), only when named: `castle-lab up vault mesh`
"""

from .base import Service
from .factory import FactoryService
from .git import GitService
from .kube import KubeService
from .mesh import MeshService
from .openclaw import OpenClawService
from .proxmox import ProxmoxService
from .s3 import S3Service
from .vault import VaultService

SERVICES = {cls.name: cls for cls in (VaultService, FactoryService, ProxmoxService, GitService, S3Service,
                                       OpenClawService, KubeService, MeshService)}
# Services `castle-lab up` starts only when named; `down` stops them with the rest.
OPT_IN = ('mesh',)

__all__ = ['OPT_IN', 'SERVICES', 'Service']
