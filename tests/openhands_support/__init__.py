"""Test doubles for the OpenHands client: a scripted fake LLM, a real agent-server, a Cloud V1 stand-in."""
