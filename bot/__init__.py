"""Gongyou (工友): a WeChat/SMS assistant for rural labourers."""

__version__ = "0.1.0"
