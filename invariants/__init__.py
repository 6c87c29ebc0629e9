"""Checkers over recorded histories.  They read events, never the model's internals."""
