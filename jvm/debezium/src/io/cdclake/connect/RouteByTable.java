package io.cdclake.connect;

import java.net.URLDecoder;
import java.nio.charset.StandardCharsets;
import java.util.HashMap;
import java.util.IdentityHashMap;
import java.util.Map;

import org.apache.kafka.common.config.ConfigDef;
import org.apache.kafka.common.config.ConfigException;
import org.apache.kafka.connect.connector.ConnectRecord;
import org.apache.kafka.connect.data.Schema;
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
 *
 * The topic is remembered per envelope schema instance (Debezium keeps one per table version),
 * with the schema and table it was found for: building and hashing a name key per record was
 * a thirteenth of Connect's CPU in a profile. The names are still compared on every record, so a
 * schema instance two tables shared would only cost a lookup, never route a record wrongly.
 */
public class RouteByTable<R extends ConnectRecord<R>> implements Transformation<R> {

    static final String TOPICS = "topics";

    // Forgets every remembered route past this many envelope schemas (a schema change makes a new one).
    private static final int MAX_ROUTES = 1024;

    /** The topic found for one table; null when cdclake names none for it. */
    private record Route(String schema, String table, String topic) {
        boolean isFor(String schemaName, String tableName) {
            return schema.equals(schemaName) && table.equals(tableName);
        }
    }

    private final Map<String, String> topics = new HashMap<>();
    private final Map<Schema, Route> routes = new IdentityHashMap<>();

    @Override
    public R apply(R record) {
        if (!(record.value() instanceof Struct value) || value.schema().field("source") == null) {
            return record;
        }
        Struct source = value.getStruct("source");
        if (source == null || source.schema().field("schema") == null || source.schema().field("table") == null) {
            return record;
        }
        String topic = route(value.schema(), source.getString("schema"), source.getString("table")).topic;
        if (topic == null) {
            return record;
        }
        return record.newRecord(topic, record.kafkaPartition(), record.keySchema(), record.key(),
                record.valueSchema(), record.value(), record.timestamp(), record.headers());
    }

    private Route route(Schema envelope, String schema, String table) {
        Route route = routes.get(envelope);
        if (route == null || !route.isFor(schema, table)) {
            if (routes.size() >= MAX_ROUTES) {
                routes.clear();
            }
            route = new Route(schema, table, topics.get(key(schema, table)));
            routes.put(envelope, route);
        }
        return route;
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
        routes.clear();
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
