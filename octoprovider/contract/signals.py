"""What the contract tells the layers above it (the audit log) without importing them."""

from django.dispatch import Signal

# Sent once a ContractView has its response: `request` (DRF), `response`, `view_kwargs` (path ids).
# Not sent for a successful poll (a state read, answered without DRF; see ContractView): it changes
# nothing, and comes for every instance every few seconds.
contract_call_answered = Signal()
