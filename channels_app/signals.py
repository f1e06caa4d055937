"""What channels_app tells the layers above it, without importing them."""
from django.dispatch import Signal

# A switch was stored for `channel`: the engine airing it may be told at once (streams_app
# listens; without a listener the engine's own slow poll finds it).
switch_requested = Signal()

# The stored system defaults changed (sent inside the transaction that wrote them, with `before`
# and `config`, the effective blocks): streams_app moves beat's health checks to a new interval.
system_config_changed = Signal()
