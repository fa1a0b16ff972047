"""Generated gRPC code (gen.sh): sockplay's control service, grpc.health.v1,
and go-plugin's GRPCController and GRPCStdio services. Do not edit."""
