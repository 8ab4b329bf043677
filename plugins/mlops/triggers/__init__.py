"""Triggers: they only wait (in the triggerer) and serialise to JSON; operators do the work."""
