"""The error a real run ends with when the cluster cannot be brought up or judged."""


class RealRunError(RuntimeError):
    """The cluster could not be brought up or judged; the message says what failed."""
