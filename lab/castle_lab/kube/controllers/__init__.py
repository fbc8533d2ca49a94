"""The controllers the Kubernetes emulator runs on its event loop.

    manager    the controller framework: watch, queue, reconcile, requeue
    suite      every controller the server runs
    core       kube-controller-manager's part: CRDs, namespaces (and the `kubernetes` Service), garbage collection,
               tokens
    workloads  Deployments (revisioned ReplicaSets), DaemonSets, StatefulSets, Jobs, pod placement and status, nodes
    failures   workload and node faults set through the control API, the controllers' clock
    events     the events the controllers record (core v1 and events.k8s.io/v1)
    storage    dynamic provisioning of PersistentVolumes, claims bound to the volume they name
    longhorn   Longhorn's node check and volumes that cannot attach
    longhorn_volumes  Longhorn volumes with replica data on the nodes' disks, robustness, rebuilds, the data API
    longhorn_backups  the BackupTarget, snapshots, backups to and restores from an S3 store, syncing from it
    charts     the Helm charts the lab can install and what each renders
    flux/      Flux: source-controller, kustomize-controller, helm-controller
    eso/       External Secrets Operator with the vault provider
"""
