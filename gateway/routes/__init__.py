"""Thin HTTP handlers: parse, call, shape."""
