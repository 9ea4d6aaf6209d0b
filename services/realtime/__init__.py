"""The real-time channel: messages (publish, subscribe parsing) and the per-process hub."""
from services.realtime.hub import CLOSE_IDLE, CLOSE_SHUTDOWN, CLOSE_SLOW, Client, Hub, LockedSocket, text_frame
from services.realtime.messages import (MAX_SUBSCRIBE_BYTES, STREAMS, SubscribeError, build_messages,
                                        message, parse_subscribe, publish, publish_many)

__all__ = ["STREAMS", "publish", "publish_many", "message", "Hub", "Client", "SubscribeError", "parse_subscribe",
           "build_messages", "text_frame", "LockedSocket", "CLOSE_SLOW", "CLOSE_IDLE", "CLOSE_SHUTDOWN",
           "MAX_SUBSCRIBE_BYTES"]
