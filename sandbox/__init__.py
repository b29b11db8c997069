"""The local sandbox: three real Kubernetes control planes (kwokctl, binary runtime),
a process runtime that runs annotated pods as real local processes on loopback,
and a real Prometheus.

This is test and demo tooling, kept out of the product package `modeldr`.
The Python API in :mod:`sandbox.api` is what tests and the drill engine use.
"""
