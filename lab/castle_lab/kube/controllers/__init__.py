"""The controllers the Kubernetes emulator runs on its event loop.

    manager    the controller framework: watch, queue, reconcile, requeue
    suite      every controller the server runs
    core       kube-controller-manager's part: CRDs, namespaces, workloads, garbage collection, tokens
    storage    dynamic provisioning of PersistentVolumes
    longhorn   Longhorn's node check and volumes that cannot attach
    charts     the Helm charts the lab can install and what each renders
    flux/      Flux: source-controller, kustomize-controller, helm-controller
    eso/       External Secrets Operator with the vault provider
"""
