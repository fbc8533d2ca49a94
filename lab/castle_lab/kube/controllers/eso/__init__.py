"""External Secrets Operator's controllers for the vault provider.

    common            names, conditions, hashes, the reconcile loop that acts while ESO is Available
    vault             the provider: a store's configuration, the Vault session, the count of requests sent
    stores            SecretStores and ClusterSecretStores validated
    external_secrets  ExternalSecrets synced into Secrets, ClusterExternalSecrets fanned out to namespaces
"""
