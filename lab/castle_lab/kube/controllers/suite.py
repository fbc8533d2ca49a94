"""Every controller the Kubernetes emulator runs: kube-controller-manager's, dynamic provisioning and Longhorn (its
volumes and backups given a storage directory), Flux's (Helm always; source and kustomize when there is an artifact
directory) and External Secrets'."""

from . import longhorn_backups, storage
from .core import CrdController, GarbageCollector, NamespaceController, TokenController
from .eso.external_secrets import ClusterExternalSecretController, ExternalSecretController
from .eso.stores import SecretStoreController
from .eso.vault import VaultRequests
from .failures import Failures
from .flux import helm
from .flux.common import ArtifactStorage
from .flux.kustomize import KustomizationController
from .flux.source import GitRepositoryController
from .workloads import NodeController, WorkloadController


def flux_controllers(api, artifact_dir, kubectl):
    """source-controller's GitRepository and kustomize-controller's Kustomization, given where artifacts live."""
    if not artifact_dir:
        return []
    artifacts = ArtifactStorage(artifact_dir)
    return [GitRepositoryController(api, artifacts), KustomizationController(api, artifacts, kubectl)]


def eso_controllers(api, requests=None):
    """ESO's SecretStore/ClusterSecretStore, ExternalSecret and ClusterExternalSecret controllers, counting Vault
    requests in `requests`."""
    if api.signer is None:
        return []
    requests = requests if requests is not None else VaultRequests()
    return [SecretStoreController(api, requests), ExternalSecretController(api, requests),
            ClusterExternalSecretController(api, requests)]


def longhorn_storage(api, storage_dir, failures, data_routes):
    """Longhorn's volumes and backups when there is a storage directory; their data API goes to data_routes."""
    if not storage_dir:
        return []
    found, data = longhorn_backups.controllers(api, storage_dir, failures)
    if data_routes is not None:
        data_routes.append(data)
    return found


def all_controllers(api, artifact_dir=None, kubectl='kubectl', vault_requests=None, failures=None,
                    apiserver=('10.0.0.1', 6443), storage_dir=None, data_routes=None):
    """The built-in controllers; Flux's source and kustomize controllers when there is an artifact directory;
    External Secrets' controllers counting their Vault requests in `vault_requests` (a VaultRequests); workloads and
    nodes failing as `failures` (a Failures) says; the `kubernetes` Service pointing at `apiserver` (address, port);
    Longhorn's volumes and backups with replica data under `storage_dir`, their control API routes (a VolumeData)
    appended to the list `data_routes`."""
    failures = failures or Failures()
    return [CrdController(api), NamespaceController(api, apiserver), WorkloadController(api, failures),
            NodeController(api, failures), GarbageCollector(api),
            TokenController(api), *helm.controllers(api, failures), *storage.controllers(api),
            *longhorn_storage(api, storage_dir, failures, data_routes),
            *flux_controllers(api, artifact_dir, kubectl), *eso_controllers(api, vault_requests)]
