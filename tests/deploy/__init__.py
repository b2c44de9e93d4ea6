"""Checks of what deploys Herald, without deploying it: the Kubernetes manifests
rendered by kubectl and validated against their schemas, the container image's
files (hadolint, the Compose schema), and the Prometheus rules and configuration
(promtool). They need the tools `make install` brings, not the broker or database."""
