"""The lab's S3-compatible object store: moto's S3 server (in its own environment, .lab/tools/s3) with IAM
authentication on, behind HTTPS from the lab CA, and a control API that takes the store off the network and back.

    server    the process (run by the moto environment's Python; it imports nothing else of castle_lab)
"""
