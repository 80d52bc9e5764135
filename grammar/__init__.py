"""The Lark grammar of the BQN backup format, shipped as package data."""
