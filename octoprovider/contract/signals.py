"""What the contract tells the layers above it (the audit log) without importing them."""

from django.dispatch import Signal

# Sent once a ContractView has its response: `request` (DRF), `response`, `view_kwargs` (path ids).
contract_call_answered = Signal()
