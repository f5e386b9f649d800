"""Launchers start one runner per dataset: a local process around a container, or (next) EC2."""
