"""Beyond one machine: the same enhancement as a Ray Data job (:mod:`.ray_enhance`) and behind Triton's HTTP and
gRPC (:mod:`.serve`, PyTriton). Neither is imported by the live path."""
