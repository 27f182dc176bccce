package hh;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.KeyValue;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.KGroupedStream;
import org.apache.kafka.streams.kstream.KStream;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.kstream.TimeWindows;
import org.apache.kafka.streams.processor.TimestampExtractor;

/**
 * The same job as heavy-hitters' hot path, as a Kafka Streams application: from the events
 * topic (JSON values keyed by region), per (region, post) the all-time count and the count
 * in each tumbling window with its grace, written to an output topic.
 *
 * Arguments: bootstrap servers, application id, input topic, output topic, processing
 * guarantee (at_least_once | exactly_once_v2), threads, then window specs as
 * size_ms:grace_ms ... Runs until it is stopped (SIGTERM).
 */
public final class HeavyHittersStreams {
  private static final ObjectMapper JSON = new ObjectMapper();

  /** Event time from the JSON value's "timestamp" (the record time if it has none). */
  public static final class EventTime implements TimestampExtractor {
    @Override
    public long extract(ConsumerRecord<Object, Object> record, long partitionTime) {
      Object v = record.value();
      if (v instanceof String s) {
        int i = s.indexOf("\"timestamp\":");
        if (i >= 0) {
          int j = i + 12;
          while (j < s.length() && s.charAt(j) == ' ') j++;
          long t = 0;
          boolean any = false;
          while (j < s.length() && Character.isDigit(s.charAt(j))) {
            t = t * 10 + (s.charAt(j++) - '0');
            any = true;
          }
          if (any) return t;
        }
      }
      return record.timestamp();
    }
  }

  public static void main(String[] args) throws Exception {
    String bootstrap = args[0];
    String appId = args[1];
    String input = args[2];
    String output = args[3];
    String guarantee = args[4];
    int threads = Integer.parseInt(args[5]);
    List<long[]> windows = new ArrayList<>();
    for (int i = 6; i < args.length; i++) {
      String[] p = args[i].split(":");
      windows.add(new long[] {Long.parseLong(p[0]), Long.parseLong(p[1])});
    }

    Properties props = new Properties();
    props.put(StreamsConfig.APPLICATION_ID_CONFIG, appId);
    props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
    props.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, guarantee);
    props.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, threads);
    props.put(StreamsConfig.DEFAULT_TIMESTAMP_EXTRACTOR_CLASS_CONFIG, EventTime.class);
    // Commits (and so visible output) once a second: comparable to the hot path's freshness.
    props.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, Integer.parseInt(System.getProperty("hh.commitMs", "1000")));
    props.put(StreamsConfig.STATESTORE_CACHE_MAX_BYTES_CONFIG, Long.parseLong(System.getProperty("hh.cacheBytes", String.valueOf(256L * 1024 * 1024))));
    props.put(StreamsConfig.REPLICATION_FACTOR_CONFIG, 1);
    props.put(StreamsConfig.STATE_DIR_CONFIG, System.getProperty("java.io.tmpdir") + "/kstreams-" + appId);
    props.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
    // The stack's broker takes SASL/SCRAM-SHA-512 logins only; the login comes in the environment (not argv, seen by ps).
    String user = System.getenv("HH_KAFKA_SASL_USERNAME");
    if (user != null) {
      String password = System.getenv("HH_KAFKA_SASL_PASSWORD");
      props.put("security.protocol", "SASL_PLAINTEXT");
      props.put("sasl.mechanism", "SCRAM-SHA-512");
      props.put(
          "sasl.jaas.config",
          "org.apache.kafka.common.security.scram.ScramLoginModule required username=\"" + user + "\" password=\"" + password + "\";");
    }

    StreamsBuilder builder = new StreamsBuilder();
    KStream<String, String> events = builder.stream(input, Consumed.with(Serdes.String(), Serdes.String()));
    // Keyed by (region, post): Kafka Streams repartitions through an internal topic.
    KStream<String, String> byPost = events.flatMap((k, v) -> {
      try {
        JsonNode e = JSON.readTree(v);
        JsonNode region = e.get("region_id");
        JsonNode post = e.get("post_id");
        if (region == null || post == null) return List.of();
        return List.of(KeyValue.pair(region.asText() + "|" + post.asText(), ""));
      } catch (Exception bad) {
        return List.of(); // the hot path dead-letters these; here they are skipped
      }
    });
    KGroupedStream<String, String> grouped = byPost.groupByKey(Grouped.with(Serdes.String(), Serdes.String()));
    grouped.count().toStream().mapValues(String::valueOf).to(output, Produced.with(Serdes.String(), Serdes.String()));
    for (long[] w : windows) {
      grouped
          .windowedBy(TimeWindows.ofSizeAndGrace(Duration.ofMillis(w[0]), Duration.ofMillis(w[1])))
          .count()
          .toStream()
          .map((wk, n) -> KeyValue.pair(wk.key() + "|" + w[0] + ":" + wk.window().start(), String.valueOf(n)))
          .to(output, Produced.with(Serdes.String(), Serdes.String()));
    }

    KafkaStreams streams = new KafkaStreams(builder.build(), props);
    CountDownLatch stop = new CountDownLatch(1);
    Runtime.getRuntime().addShutdownHook(new Thread(() -> {
      streams.close(Duration.ofSeconds(30));
      stop.countDown();
    }));
    streams.setStateListener((now, before) -> System.out.println("state " + before + " -> " + now));
    streams.start();
    stop.await();
  }
}
