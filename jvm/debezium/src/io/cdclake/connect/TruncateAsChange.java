package io.cdclake.connect;

import java.util.Map;

import org.apache.kafka.common.config.ConfigDef;
import org.apache.kafka.connect.connector.ConnectRecord;
import org.apache.kafka.connect.data.Schema;
import org.apache.kafka.connect.data.SchemaBuilder;
import org.apache.kafka.connect.data.Struct;
import org.apache.kafka.connect.transforms.Transformation;

/**
 * Turns Debezium's TRUNCATE event (op "t", no before/after) into a flat change event with
 * the same metadata fields FlatChange adds to every other change (__op, __lsn, __txId,
 * __source_ts_ms, __table, __schema, __ts_ms), so it reaches the table's topic.
 *
 * FlatChange, like ExtractNewRecordState, drops an envelope with neither row; placed before it
 * in the chain, this transform hands it a record that is no longer an envelope, which it passes
 * unchanged. Every other record goes through untouched.
 */
public class TruncateAsChange<R extends ConnectRecord<R>> implements Transformation<R> {

    static final Schema FLAT = SchemaBuilder.struct().name("io.cdclake.connect.Truncate")
            .field("__deleted", Schema.OPTIONAL_STRING_SCHEMA)
            .field("__op", Schema.STRING_SCHEMA)
            .field("__lsn", Schema.OPTIONAL_INT64_SCHEMA)
            .field("__txId", Schema.OPTIONAL_INT64_SCHEMA)
            .field("__source_ts_ms", Schema.OPTIONAL_INT64_SCHEMA)
            .field("__table", Schema.OPTIONAL_STRING_SCHEMA)
            .field("__schema", Schema.OPTIONAL_STRING_SCHEMA)
            .field("__ts_ms", Schema.OPTIONAL_INT64_SCHEMA)
            .build();

    @Override
    public R apply(R record) {
        if (!(record.value() instanceof Struct value) || value.schema().field("op") == null
                || value.schema().field("source") == null || !"t".equals(value.getString("op"))) {
            return record;
        }
        Struct source = value.getStruct("source");
        Struct flat = new Struct(FLAT)
                .put("__deleted", "false")
                .put("__op", "t")
                .put("__lsn", optionalLong(source, "lsn"))
                .put("__txId", optionalLong(source, "txId"))
                .put("__source_ts_ms", optionalLong(source, "ts_ms"))
                .put("__table", optionalString(source, "table"))
                .put("__schema", optionalString(source, "schema"))
                .put("__ts_ms", optionalLong(value, "ts_ms"));
        return record.newRecord(record.topic(), record.kafkaPartition(), record.keySchema(), record.key(),
                FLAT, flat, record.timestamp());
    }

    private static Long optionalLong(Struct struct, String field) {
        return struct.schema().field(field) == null ? null : struct.getInt64(field);
    }

    private static String optionalString(Struct struct, String field) {
        return struct.schema().field(field) == null ? null : struct.getString(field);
    }

    @Override
    public ConfigDef config() {
        return new ConfigDef();
    }

    @Override
    public void configure(Map<String, ?> configs) {
    }

    @Override
    public void close() {
    }
}
