"""Generated gRPC modules of the demo (see users.proto for how to regenerate them)."""
