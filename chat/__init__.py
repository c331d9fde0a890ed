"""turnwise core: conversation model, dataset formats, LLM backends and the resumable runner."""

from chat.conversation import Conversation, Document, Message, PreferencePair, ValidationError
from chat.errors import BackendError, ConfigError, InputError, TurnwiseError

__all__ = [
    "BackendError", "ConfigError", "Conversation", "Document", "InputError", "Message",
    "PreferencePair", "TurnwiseError", "ValidationError",
]
