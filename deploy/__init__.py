"""Deployment: Dockerfiles, manifests, and the embedded dev stack launcher."""
