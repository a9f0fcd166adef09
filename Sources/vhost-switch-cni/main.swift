// The CNI plugin: see issue "Kubernetes CNI-style deployment". Placeholder until it lands.
import Glibc
print("{\"cniVersion\": \"1.0.0\", \"code\": 4, \"msg\": \"vhost-switch-cni is not implemented yet\"}")
exit(1)
