"""The pure core: domain types, errors, parameters, experiments, the item space and the
ranking stages. It imports nothing of the application, the adapters or the transport
(see docs/ARCHITECTURE.md)."""
