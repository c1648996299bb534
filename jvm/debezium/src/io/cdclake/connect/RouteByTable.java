package io.cdclake.connect;

import java.net.URLDecoder;
import java.nio.charset.StandardCharsets;
import java.util.HashMap;
import java.util.Map;

import org.apache.kafka.common.config.ConfigDef;
import org.apache.kafka.common.config.ConfigException;
import org.apache.kafka.connect.connector.ConnectRecord;
import org.apache.kafka.connect.data.Struct;
import org.apache.kafka.connect.transforms.Transformation;

/**
 * Sends each Debezium change event to the topic cdclake named for its table
 * (cdclake/config/tables.py decides the names; this only looks them up).
 *
 * Debezium's own topic names replace every character outside [A-Za-z0-9._-] with "_" and
 * join schema and table with ".", so two tables can share one, and Kafka refuses topics
 * that differ only in "." against "_". The table is read from the envelope's source block
 * (schema, table as PostgreSQL spells them), so this transform runs first in the chain.
 *
 * Config "topics": comma-separated entries {@code schema.table=topic}, schema and table
 * percent-encoded (UTF-8, "." as %2E). A record of another table, or without a source
 * block (heartbeats), goes through unchanged.
 */
public class RouteByTable<R extends ConnectRecord<R>> implements Transformation<R> {

    static final String TOPICS = "topics";

    private final Map<String, String> topics = new HashMap<>();

    @Override
    public R apply(R record) {
        if (!(record.value() instanceof Struct value) || value.schema().field("source") == null) {
            return record;
        }
        Struct source = value.getStruct("source");
        if (source == null || source.schema().field("schema") == null || source.schema().field("table") == null) {
            return record;
        }
        String topic = topics.get(key(source.getString("schema"), source.getString("table")));
        if (topic == null) {
            return record;
        }
        return record.newRecord(topic, record.kafkaPartition(), record.keySchema(), record.key(),
                record.valueSchema(), record.value(), record.timestamp(), record.headers());
    }

    private static String key(String schema, String table) {
        return schema + "\u0000" + table;
    }

    @Override
    public ConfigDef config() {
        return new ConfigDef().define(TOPICS, ConfigDef.Type.STRING, "", ConfigDef.Importance.HIGH,
                "comma-separated schema.table=topic, schema and table percent-encoded");
    }

    @Override
    public void configure(Map<String, ?> configs) {
        Object value = configs.get(TOPICS);
        topics.clear();
        if (value == null) {
            return;
        }
        for (String entry : value.toString().split(",")) {
            if (entry.isBlank()) {
                continue;
            }
            int dot = entry.indexOf('.');
            int eq = entry.indexOf('=');
            if (dot < 0 || eq < dot) {
                throw new ConfigException(TOPICS, value, "entry '" + entry + "' is not schema.table=topic");
            }
            String schema = URLDecoder.decode(entry.substring(0, dot), StandardCharsets.UTF_8);
            String table = URLDecoder.decode(entry.substring(dot + 1, eq), StandardCharsets.UTF_8);
            topics.put(key(schema, table), entry.substring(eq + 1));
        }
    }

    @Override
    public void close() {
    }
}
