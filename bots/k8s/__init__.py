"""Kubernetes manifests of a fleet: `mmfleet k8s render` (bots/cli/k8s.py) and what it is made of."""

from bots.k8s.names import object_name
from bots.k8s.render import RenderOptions, render, write_manifests

__all__ = ["RenderOptions", "object_name", "render", "write_manifests"]
