"""The lab's Kubernetes API emulator: a kube-apiserver that real clients cannot tell from a real one."""
