"""Thin RQ entry points: validate the payload, call into ``dialer``, return plain data."""
