"""Golden runs: small fixed real-MNIST runs whose accuracy matrices guard every method's trajectory (manifest.yaml)."""
