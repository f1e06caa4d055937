"""What channels_app tells the layers above it, without importing them."""
from django.dispatch import Signal

# A switch was stored for `channel`: the engine airing it may be told at once (streams_app
# listens; without a listener the engine's own slow poll finds it).
switch_requested = Signal()
