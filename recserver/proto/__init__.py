"""Generated gRPC code (scripts/gen_protos.sh from protos/); do not edit."""
