"""gRPC transport: servicers translate protos to the domain and back, nothing else."""
