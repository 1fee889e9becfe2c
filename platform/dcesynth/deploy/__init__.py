"""From one machine to a cluster: cluster-file checks and named job submission."""
