"""The chat: Channels consumers, Celery tasks, conversation models, and the inference engine (engine/)."""
