"""What runs in a client process: the Java client's producer and consumer behaviour, the
partitioner, and the application loops built on them."""
