"""The lab's services, in the order `castle-lab up` starts them."""

from .base import Service
from .factory import FactoryService
from .git import GitService
from .kube import KubeService
from .openclaw import OpenClawService
from .proxmox import ProxmoxService
from .vault import VaultService

SERVICES = {cls.name: cls for cls in (VaultService, FactoryService, ProxmoxService, GitService, OpenClawService,
                                       KubeService)}

__all__ = ['SERVICES', 'Service']
