"""Executor: discovery and wave rollouts through ansible-runner."""
