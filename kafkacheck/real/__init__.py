"""Running kafkacheck's workloads against a real Apache Kafka cluster.

The model's verdicts are only worth what its agreement with real Kafka is worth.  This
package starts a three-node KRaft cluster of a chosen Kafka release on this machine, each
node in its own network namespace, drives it with Kafka's own Java client through a small
Java program (``java/``), injects Jepsen-style faults from a seeded schedule, and records
the history in exactly the model's event format, so that the same checkers judge it.

One module per job:

* ``build``: resolve the broker's jars with Maven (cached per version) and compile the
  Java driver;
* ``environment``: what this machine can do (Java, Maven, network namespaces);
* ``procs``: a run's processes and its on-disk registry, and the stale-resource sweep;
* ``netns``: namespaces, veths, the router namespace and the partitions cut in it;
* ``cluster``: the KRaft nodes (configuration, storage format, start, kill, pause);
* ``driver``: one Java client process, spoken to in JSON lines;
* ``recorder``: the thread-safe history recorder with a wall clock;
* ``workload``: the producers and the consumer application loop;
* ``faults``: the seeded fault schedule and the nemesis that applies it;
* ``settings``: routing Kafka-named settings to the model, clients, topic and brokers;
* ``run``: one whole run, from sweep to verdict;
* ``compare``: the model and the cluster side by side.
"""
