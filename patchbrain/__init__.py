"""patchbrain: agentless, Ansible-driven patching that refuses to weaken the hosts it patches."""

import logging

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())
