"""A deterministic, in-process model of a Kafka cluster, driven one atomic step at a time.

Nothing in this package reads the wall clock, starts a thread or draws unseeded random
numbers: every choice (which message is delivered, when a node crashes, how far the clock
moves, what a client calls) is an action handed to :meth:`model.cluster.Cluster.apply`.
"""
