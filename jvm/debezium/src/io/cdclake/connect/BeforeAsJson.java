package io.cdclake.connect;

import java.nio.charset.StandardCharsets;
import java.util.HashMap;
import java.util.Map;

import org.apache.kafka.common.config.ConfigDef;
import org.apache.kafka.connect.connector.ConnectRecord;
import org.apache.kafka.connect.data.Field;
import org.apache.kafka.connect.data.Schema;
import org.apache.kafka.connect.data.SchemaBuilder;
import org.apache.kafka.connect.data.Struct;
import org.apache.kafka.connect.json.JsonConverter;
import org.apache.kafka.connect.transforms.Transformation;

/**
 * Adds the old row of a Debezium change event to its envelope as one JSON text field,
 * {@code cdclake_before}, which ExtractNewRecordState then adds to the flat event
 * ({@code add.fields=...,cdclake_before} gives {@code __cdclake_before}).
 *
 * With REPLICA IDENTITY FULL the old row is the whole row: a table without a key needs it to
 * know which of its rows an update changed. ExtractNewRecordState cannot add the {@code before}
 * struct itself (a delete's rewrite fails with "Struct schemas do not match"); a string field
 * goes the way {@code op} does. The text is the JSON converter's (schemas off), so its values are
 * encoded as the event's own. Records that are no change envelope go through untouched.
 */
public class BeforeAsJson<R extends ConnectRecord<R>> implements Transformation<R> {

    static final String FIELD = "cdclake_before";

    private final Map<Schema, Schema> withField = new HashMap<>();
    private final JsonConverter json = new JsonConverter();

    @Override
    public R apply(R record) {
        if (!(record.value() instanceof Struct value) || value.schema().field("op") == null
                || value.schema().field("before") == null || value.schema().field(FIELD) != null) {
            return record;
        }
        Schema schema = withField.computeIfAbsent(value.schema(), BeforeAsJson::addField);
        Struct updated = new Struct(schema);
        for (Field field : value.schema().fields()) {
            updated.put(field.name(), value.getWithoutDefault(field.name()));
        }
        Struct before = value.getStruct("before");
        if (before != null) {
            byte[] text = json.fromConnectData(record.topic(), before.schema(), before);
            updated.put(FIELD, new String(text, StandardCharsets.UTF_8));
        }
        return record.newRecord(record.topic(), record.kafkaPartition(), record.keySchema(), record.key(),
                schema, updated, record.timestamp(), record.headers());
    }

    private static Schema addField(Schema envelope) {
        SchemaBuilder builder = SchemaBuilder.struct().name(envelope.name()).version(envelope.version())
                .doc(envelope.doc());
        if (envelope.isOptional()) {
            builder.optional();
        }
        for (Field field : envelope.fields()) {
            builder.field(field.name(), field.schema());
        }
        return builder.field(FIELD, Schema.OPTIONAL_STRING_SCHEMA).build();
    }

    @Override
    public ConfigDef config() {
        return new ConfigDef();
    }

    @Override
    public void configure(Map<String, ?> configs) {
        // An explicit NULL stays NULL, never the column's DEFAULT (KIP-581), as in the event itself.
        json.configure(Map.of("schemas.enable", "false", "replace.null.with.default", "false"), false);
    }

    @Override
    public void close() {
        json.close();
    }
}
