"""The OpenAI-compatible HTTP API (`/v1/models`, `/v1/chat/completions`).

A completion is a conversation of its own (session key `api:<key id>`) whose request messages are saved as
Message rows, with a queued reply of origin "api": the same Celery workers and the same continuous batching as
the browser chat serve it, and the reply's Redis Stream carries its text back. This package knows the OpenAI wire
format and API keys; the engine and the chat socket know nothing of it.
"""
