"""Helpers the tests share: servers on loopback, fault-injection destinations, gates."""
