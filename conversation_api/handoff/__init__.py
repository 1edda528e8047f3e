"""Human handoff: the routing flag, its audit trail, the CSR queue and console."""
