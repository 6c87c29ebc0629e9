package kafkacheck.real;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.lang.reflect.Field;
import java.lang.reflect.Modifier;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Properties;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.ListOffsetsResult;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.QuorumInfo;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.TopicPartitionInfo;
import org.apache.kafka.common.config.TopicConfig;
import org.apache.kafka.common.errors.TimeoutException;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * kafkacheck's client driver: Kafka's own Java client (kafka-clients), steered by
 * kafkacheck's Python side through JSON lines.
 *
 * <p>Why a driver at all: the model follows the Java client's behaviour (accumulator,
 * retries, in-flight requests, the consumer's fetch positions), so the real cluster must
 * be exercised by that same client, not a reimplementation. The Python side decides what
 * to do and when, and records the history; this program only performs one operation per
 * request and reports its outcome, so the recorded history says exactly what the client
 * said.
 *
 * <p>Usage: {@code Driver MODE CONFIG_JSON}; operations arrive one JSON object per line on
 * standard input, results leave one JSON object per line on standard output, every line
 * carrying the request's {@code id}. Modes: producer, consumer, admin, final-read,
 * config-names. The JSON library is Jackson, which kafka_2.13 already brings.
 */
public final class Driver {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final PrintStream OUT =
            new PrintStream(new java.io.FileOutputStream(java.io.FileDescriptor.out), false,
                    StandardCharsets.UTF_8);
    /** The record header naming the producer client that sent a record. */
    static final String PRODUCER_HEADER = "kafkacheck-producer";

    private Driver() {
    }

    public static void main(String[] args) throws Exception {
        if (args.length < 1) {
            System.err.println("usage: Driver MODE [CONFIG_JSON]");
            System.exit(2);
        }
        JsonNode config = args.length > 1 ? JSON.readTree(args[1]) : JSON.createObjectNode();
        switch (args[0]) {
            case "producer" -> producer(config);
            case "consumer" -> consumer(config);
            case "admin" -> admin(config);
            case "final-read" -> finalRead(config);
            case "config-names" -> configNames();
            default -> {
                System.err.println("unknown mode " + args[0]);
                System.exit(2);
            }
        }
        OUT.flush();
        System.exit(0);
    }

    // -- output -------------------------------------------------------------------------

    static synchronized void emit(ObjectNode line) {
        try {
            OUT.println(JSON.writeValueAsString(line));
            OUT.flush();
        } catch (Exception e) {
            throw new RuntimeException(e);
        }
    }

    static ObjectNode reply(JsonNode op) {
        ObjectNode out = JSON.createObjectNode();
        if (op != null && op.has("id")) {
            out.set("id", op.get("id"));
        }
        return out;
    }

    static ObjectNode error(ObjectNode out, Throwable t) {
        Throwable cause = unwrap(t);
        out.put("ok", false);
        out.put("error", cause.getClass().getSimpleName());
        out.put("message", String.valueOf(cause.getMessage()));
        return out;
    }

    static Throwable unwrap(Throwable t) {
        while ((t instanceof ExecutionException || t instanceof java.util.concurrent.CompletionException)
                && t.getCause() != null) {
            t = t.getCause();
        }
        return t;
    }

    static Properties props(JsonNode config) {
        Properties props = new Properties();
        props.put("bootstrap.servers", config.get("bootstrap").asText());
        JsonNode settings = config.get("props");
        if (settings != null) {
            for (Iterator<Map.Entry<String, JsonNode>> it = settings.fields(); it.hasNext(); ) {
                Map.Entry<String, JsonNode> e = it.next();
                props.put(e.getKey(), e.getValue().asText());
            }
        }
        return props;
    }

    /** Requests, one per line, read lazily: the next line is only read when asked for,
     * so a reply is never held back waiting for the following request. */
    static Iterable<JsonNode> requests() {
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        return () -> new Iterator<JsonNode>() {
            private JsonNode next;
            private boolean done;

            public boolean hasNext() {
                if (next == null && !done) {
                    try {
                        String line;
                        do {
                            line = in.readLine();
                        } while (line != null && line.isBlank());
                        if (line == null) {
                            done = true;
                        } else {
                            next = JSON.readTree(line);
                        }
                    } catch (Exception e) {
                        throw new RuntimeException(e);
                    }
                }
                return next != null;
            }

            public JsonNode next() {
                if (!hasNext()) {
                    throw new java.util.NoSuchElementException();
                }
                JsonNode current = next;
                next = null;
                return current;
            }
        };
    }

    // -- producer -----------------------------------------------------------------------

    /**
     * One KafkaProducer. {"op":"send","id":..,"partition":p,"key":k,"value":v} answers
     * from the send callback with {"id","ok":true,"partition","offset"} or
     * {"id","ok":false,"error","message","definite"}; "definite" is true only when send()
     * itself threw, so the record never entered the accumulator and cannot have been
     * written. Every other failure is indeterminate: an earlier attempt may have landed.
     */
    static void producer(JsonNode config) {
        Properties props = props(config);
        props.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        props.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        String topic = config.get("topic").asText();
        byte[] client = config.path("client").asText("p0").getBytes(StandardCharsets.UTF_8);
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(props)) {
            ObjectNode ready = JSON.createObjectNode();
            ready.put("ready", true);
            emit(ready);
            for (JsonNode op : requests()) {
                String kind = op.path("op").asText();
                if (kind.equals("send")) {
                    ProducerRecord<String, String> record = new ProducerRecord<>(topic,
                            op.get("partition").asInt(), op.path("key").asText(null),
                            op.get("value").asText());
                    record.headers().add(PRODUCER_HEADER, client);
                    try {
                        producer.send(record, (RecordMetadata md, Exception e) -> {
                            ObjectNode out = reply(op);
                            if (e == null) {
                                out.put("ok", true);
                                out.put("partition", md.partition());
                                out.put("offset", md.hasOffset() ? md.offset() : -1);
                            } else {
                                error(out, e).put("definite", false);
                            }
                            emit(out);
                        });
                    } catch (Exception e) {
                        emit(error(reply(op), e).put("definite", true));
                    }
                } else if (kind.equals("flush")) {
                    producer.flush();
                    emit(reply(op).put("ok", true));
                } else if (kind.equals("close")) {
                    break;
                }
            }
            producer.close(Duration.ofMillis(config.path("close_ms").asLong(5000)));
        }
    }

    // -- consumer -----------------------------------------------------------------------

    /**
     * One KafkaConsumer assigned every partition of the topic (as the model's consumer),
     * committing to its group.id with commitSync. At start it reports where it starts on
     * each partition: {"position": {p: offset}, "reasons": {p: "committed" |
     * "auto.offset.reset"}}. Then {"op":"poll","ms":n} answers {"records": [[p, offset,
     * value, key, leaderEpoch], ...]} and {"op":"commit","offsets":{p: o},"ms":n} answers
     * {"ok":true} or an error ("definite" false for a timeout, when the commit may still
     * have been written).
     */
    static void consumer(JsonNode config) {
        Properties props = props(config);
        props.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        props.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        String topic = config.get("topic").asText();
        List<TopicPartition> partitions = new ArrayList<>();
        for (JsonNode p : config.get("partitions")) {
            partitions.add(new TopicPartition(topic, p.asInt()));
        }
        long startMs = config.path("start_ms").asLong(30000);
        try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(props)) {
            consumer.assign(partitions);
            ObjectNode ready = JSON.createObjectNode();
            ObjectNode positions = ready.putObject("position");
            ObjectNode reasons = ready.putObject("reasons");
            try {
                Map<TopicPartition, OffsetAndMetadata> committed =
                        consumer.committed(new java.util.HashSet<>(partitions), Duration.ofMillis(startMs));
                for (TopicPartition tp : partitions) {
                    long position = consumer.position(tp, Duration.ofMillis(startMs));
                    positions.put(String.valueOf(tp.partition()), position);
                    reasons.put(String.valueOf(tp.partition()),
                            committed.get(tp) != null ? "committed" : "auto.offset.reset");
                }
                ready.put("ready", true);
            } catch (Exception e) {
                error(ready, e).put("ready", false);
                emit(ready);
                return;
            }
            emit(ready);
            for (JsonNode op : requests()) {
                String kind = op.path("op").asText();
                if (kind.equals("poll")) {
                    ObjectNode out = reply(op);
                    try {
                        ConsumerRecords<String, String> records =
                                consumer.poll(Duration.ofMillis(op.path("ms").asLong(100)));
                        ArrayNode list = out.putArray("records");
                        for (ConsumerRecord<String, String> r : records) {
                            list.add(recordJson(r, false));
                        }
                        out.put("ok", true);
                    } catch (Exception e) {
                        error(out, e);
                    }
                    emit(out);
                } else if (kind.equals("commit")) {
                    ObjectNode out = reply(op);
                    Map<TopicPartition, OffsetAndMetadata> offsets = new HashMap<>();
                    for (Iterator<Map.Entry<String, JsonNode>> it = op.get("offsets").fields(); it.hasNext(); ) {
                        Map.Entry<String, JsonNode> e = it.next();
                        offsets.put(new TopicPartition(topic, Integer.parseInt(e.getKey())),
                                new OffsetAndMetadata(e.getValue().asLong()));
                    }
                    try {
                        consumer.commitSync(offsets, Duration.ofMillis(op.path("ms").asLong(10000)));
                        out.put("ok", true);
                    } catch (Exception e) {
                        boolean timeout = unwrap(e) instanceof TimeoutException
                                || unwrap(e) instanceof org.apache.kafka.common.errors.InterruptException;
                        error(out, e).put("definite", !timeout);
                    }
                    emit(out);
                } else if (kind.equals("close")) {
                    break;
                }
            }
        }
    }

    static ArrayNode recordJson(ConsumerRecord<String, String> r, boolean withProducer) {
        ArrayNode row = JSON.createArrayNode();
        row.add(r.partition());
        row.add(r.offset());
        row.add(Long.parseLong(r.value()));
        row.add(r.key());
        if (withProducer) {
            Header h = r.headers().lastHeader(PRODUCER_HEADER);
            row.add(h == null ? null : new String(h.value(), StandardCharsets.UTF_8));
        }
        Optional<Integer> epoch = r.leaderEpoch();
        row.add(epoch.isPresent() ? epoch.get() : -1);
        return row;
    }

    // -- admin --------------------------------------------------------------------------

    /**
     * A long-lived Admin client: create-topic, describe (leaders, ISR, replicas per
     * partition), nodes (the brokers registered and unfenced), quorum (the active KRaft
     * controller) and offsets (earliest and latest,
     * i.e. the log start and the high watermark).
     */
    static void admin(JsonNode config) throws Exception {
        Properties props = props(config);
        long ms = config.path("timeout_ms").asLong(5000);
        try (Admin admin = Admin.create(props)) {
            ObjectNode ready = JSON.createObjectNode();
            ready.put("ready", true);
            emit(ready);
            for (JsonNode op : requests()) {
                ObjectNode out = reply(op);
                long timeout = op.path("ms").asLong(ms);
                try {
                    switch (op.path("op").asText()) {
                        case "create-topic" -> createTopic(admin, op, timeout);
                        case "describe" -> describe(admin, op.get("topic").asText(), out, timeout);
                        case "quorum" -> quorum(admin, out, timeout);
                        case "nodes" -> {
                            ArrayNode ids = out.putArray("nodes");
                            for (Node n : admin.describeCluster().nodes().get(timeout, TimeUnit.MILLISECONDS)) {
                                ids.add(n.id());
                            }
                        }
                        case "offsets" -> offsets(admin, op, out, timeout);
                        case "close" -> {
                            return;
                        }
                        default -> throw new IllegalArgumentException("unknown op " + op.path("op"));
                    }
                    out.put("ok", true);
                } catch (Exception e) {
                    error(out, e);
                }
                emit(out);
            }
        }
    }

    static void createTopic(Admin admin, JsonNode op, long timeout) throws Exception {
        NewTopic topic = new NewTopic(op.get("topic").asText(), op.get("partitions").asInt(),
                (short) op.get("replication_factor").asInt());
        Map<String, String> configs = new HashMap<>();
        for (Iterator<Map.Entry<String, JsonNode>> it = op.path("configs").fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> e = it.next();
            configs.put(e.getKey(), e.getValue().asText());
        }
        topic.configs(configs);
        admin.createTopics(List.of(topic)).all().get(timeout, TimeUnit.MILLISECONDS);
    }

    static void describe(Admin admin, String topic, ObjectNode out, long timeout) throws Exception {
        TopicDescription d = admin.describeTopics(List.of(topic)).allTopicNames()
                .get(timeout, TimeUnit.MILLISECONDS).get(topic);
        ArrayNode parts = out.putArray("partitions");
        for (TopicPartitionInfo info : d.partitions()) {
            ObjectNode p = parts.addObject();
            p.put("partition", info.partition());
            Node leader = info.leader();
            if (leader == null || leader.isEmpty()) {
                p.putNull("leader");
            } else {
                p.put("leader", leader.id());
            }
            ArrayNode isr = p.putArray("isr");
            info.isr().forEach(n -> isr.add(n.id()));
            ArrayNode replicas = p.putArray("replicas");
            info.replicas().forEach(n -> replicas.add(n.id()));
        }
    }

    static void quorum(Admin admin, ObjectNode out, long timeout) throws Exception {
        QuorumInfo q = admin.describeMetadataQuorum().quorumInfo().get(timeout, TimeUnit.MILLISECONDS);
        out.put("leader", q.leaderId());
        out.put("epoch", q.leaderEpoch());
        ArrayNode voters = out.putArray("voters");
        for (QuorumInfo.ReplicaState v : q.voters()) {
            ObjectNode o = voters.addObject();
            o.put("id", v.replicaId());
            o.put("end", v.logEndOffset());
        }
    }

    static void offsets(Admin admin, JsonNode op, ObjectNode out, long timeout) throws Exception {
        String topic = op.get("topic").asText();
        Map<TopicPartition, OffsetSpec> latest = new HashMap<>();
        Map<TopicPartition, OffsetSpec> earliest = new HashMap<>();
        for (JsonNode p : op.get("partitions")) {
            latest.put(new TopicPartition(topic, p.asInt()), OffsetSpec.latest());
            earliest.put(new TopicPartition(topic, p.asInt()), OffsetSpec.earliest());
        }
        ObjectNode hw = out.putObject("latest");
        for (Map.Entry<TopicPartition, ListOffsetsResult.ListOffsetsResultInfo> e :
                admin.listOffsets(latest).all().get(timeout, TimeUnit.MILLISECONDS).entrySet()) {
            hw.put(String.valueOf(e.getKey().partition()), e.getValue().offset());
        }
        ObjectNode start = out.putObject("earliest");
        for (Map.Entry<TopicPartition, ListOffsetsResult.ListOffsetsResultInfo> e :
                admin.listOffsets(earliest).all().get(timeout, TimeUnit.MILLISECONDS).entrySet()) {
            start.put(String.valueOf(e.getKey().partition()), e.getValue().offset());
        }
    }

    // -- final read ---------------------------------------------------------------------

    /**
     * A fresh consumer with no group reads every partition from its log start up to the
     * high watermark it had when the read began, and prints one line per partition:
     * {"partition", "start", "hw", "records": [[offset, value, key, producer, epoch]]}.
     * This is the "final committed log" the model records at its Finish step.
     */
    static void finalRead(JsonNode config) {
        Properties props = props(config);
        props.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        props.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        props.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        props.remove(ConsumerConfig.GROUP_ID_CONFIG);
        String topic = config.get("topic").asText();
        long deadline = System.currentTimeMillis() + config.path("timeout_ms").asLong(60000);
        List<TopicPartition> partitions = new ArrayList<>();
        for (JsonNode p : config.get("partitions")) {
            partitions.add(new TopicPartition(topic, p.asInt()));
        }
        try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(props)) {
            consumer.assign(partitions);
            consumer.seekToBeginning(partitions);
            Map<TopicPartition, Long> start = consumer.beginningOffsets(partitions, Duration.ofMillis(30000));
            Map<TopicPartition, Long> end = consumer.endOffsets(partitions, Duration.ofMillis(30000));
            Map<Integer, ArrayNode> rows = new HashMap<>();
            for (TopicPartition tp : partitions) {
                rows.put(tp.partition(), JSON.createArrayNode());
            }
            Set<TopicPartition> pending = new TreeSet<>((a, b) -> Integer.compare(a.partition(), b.partition()));
            for (TopicPartition tp : partitions) {
                if (consumer.position(tp, Duration.ofMillis(30000)) < end.get(tp)) {
                    pending.add(tp);
                }
            }
            while (!pending.isEmpty() && System.currentTimeMillis() < deadline) {
                for (ConsumerRecord<String, String> r : consumer.poll(Duration.ofMillis(200))) {
                    TopicPartition tp = new TopicPartition(r.topic(), r.partition());
                    if (r.offset() < end.get(tp)) {
                        ArrayNode row = recordJson(r, true);
                        row.remove(0);
                        rows.get(r.partition()).add(row);
                    }
                }
                pending.removeIf(tp -> consumer.position(tp) >= end.get(tp));
            }
            for (TopicPartition tp : partitions) {
                ObjectNode out = JSON.createObjectNode();
                out.put("partition", tp.partition());
                out.put("start", start.get(tp));
                out.put("hw", end.get(tp));
                out.put("complete", !pending.contains(tp));
                out.set("records", rows.get(tp.partition()));
                emit(out);
            }
        }
    }

    // -- setting names ------------------------------------------------------------------

    /** The names Kafka itself accepts for producers, consumers and topics, so that the
     * Python side can route a --set NAME=VALUE to the right place, or refuse it. */
    static void configNames() throws Exception {
        ObjectNode out = JSON.createObjectNode();
        ArrayNode producer = out.putArray("producer");
        new TreeSet<>(ProducerConfig.configNames()).forEach(producer::add);
        ArrayNode consumer = out.putArray("consumer");
        new TreeSet<>(ConsumerConfig.configNames()).forEach(consumer::add);
        ArrayNode topic = out.putArray("topic");
        Set<String> topicNames = new TreeSet<>();
        for (Field f : TopicConfig.class.getFields()) {
            if (Modifier.isStatic(f.getModifiers()) && f.getName().endsWith("_CONFIG")
                    && f.getType() == String.class) {
                topicNames.add((String) f.get(null));
            }
        }
        topicNames.forEach(topic::add);
        ArrayNode admin = out.putArray("admin");
        new TreeSet<>(AdminClientConfig.configNames()).forEach(admin::add);
        emit(out);
    }
}
